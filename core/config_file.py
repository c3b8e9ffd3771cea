"""The shipped `config/custody.toml`, generated from the typed settings and their help.

Each setting is declared once, in core/settings.py, with its type, default and
`Field(description=...)`; this module writes the documented TOML file from them, so the
help a reader sees in the file is the help declared with the setting.  A test fails when
the shipped file and the declaration differ; regenerate with

    .venv/bin/python -m core.config_file > config/custody.toml
"""
from __future__ import annotations

import json
import sys
import textwrap
from enum import Enum
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from core.settings import Settings

HEADER = """\
# Custody station configuration / 采集站配置.
# GENERATED from core/settings.py (each setting's type, default and help are declared there):
#   .venv/bin/python -m core.config_file > config/custody.toml
# Every key has a default that runs; this file shows them.  Relative paths resolve against
# $CUSTODY_HOME (default: the current directory).  CUSTODY_CATALOG_URL and CUSTODY_STORAGE_URL
# override [catalog].url and [storage].url.
"""


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, Path):
        value = str(value)
    if isinstance(value, str):
        if "\\" in value and "'" not in value:
            return f"'{value}'"  # a literal string: patterns stay readable
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML form for {value!r}")


def _comment(text: str, width: int = 100) -> list[str]:
    lines: list[str] = []
    for para in text.strip().split("\n"):
        lines += textwrap.wrap(para, width - 2) or [""]
    return [f"# {line}".rstrip() for line in lines]


def _default(info: FieldInfo) -> Any:
    if info.default is not PydanticUndefined:
        return info.default
    if info.default_factory is not None:
        return info.default_factory()  # type: ignore[call-arg]
    return PydanticUndefined


def _section(name: str, model: type[BaseModel]) -> list[str]:
    out = [f"[{name}]"]
    tables: list[str] = []
    for key, info in model.model_fields.items():
        help_text = info.description
        if not help_text:
            raise ValueError(f"setting [{name}].{key} has no description (declare Field(description=...))")
        value = _default(info)
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        if isinstance(value, dict):
            tables += ["", *_comment(help_text), f"[{name}.{key}]"]
            tables += [f"{json.dumps(k, ensure_ascii=False)} = {_toml_value(v)}" for k, v in value.items()]
            if "example" in extra:
                tables.append(f"# {extra['example']}")
            continue
        out += _comment(help_text)
        computed = info.default_factory is not None and not isinstance(value, list | dict)  # e.g. the host name
        if value is None or value is PydanticUndefined or computed:
            out.append(f"# {key} = {extra.get('example', chr(34) * 2)}")
        else:
            out.append(f"{key} = {_toml_value(value)}")
            if "example" in extra:
                out.append(f"# e.g. {key} = {extra['example']}")
    return out + tables


def render(settings_model: type[Settings] = Settings) -> str:
    parts = [HEADER]
    for name, info in settings_model.model_fields.items():
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            if info.description:
                parts.append("\n".join(_comment(info.description)))
            parts.append("\n".join(_section(name, annotation)) + "\n")
    return "\n".join(parts)


if __name__ == "__main__":
    sys.stdout.write(render())
