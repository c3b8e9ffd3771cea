"""A module imported on first use (issue 14: light commands start in <= 0.3 s).

`np = lazy("numpy")` at module level costs nothing; the first `np.something` imports numpy.
Used for the heavy native packages (numpy ~0.1 s, cv2 ~0.15 s, av ~0.1 s on this machine)
that only the indexing and redaction paths touch, so `custody media list` or `custody search`
never pay for them even though their modules import the indexer.  Type checkers see the real
module (import it under `if TYPE_CHECKING:` next to the lazy one).
"""
from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any


class LazyModule:
    __slots__ = ("_name", "_module")

    def __init__(self, name: str) -> None:
        self._name = name
        self._module: ModuleType | None = None

    def __getattr__(self, attr: str) -> Any:
        if self._module is None:
            self._module = importlib.import_module(self._name)
        return getattr(self._module, attr)

    def __repr__(self) -> str:
        return f"<lazy module {self._name!r}{' (loaded)' if self._module is not None else ''}>"


def lazy(name: str) -> Any:
    return LazyModule(name)
