"""Issue 14: while the device is read, the early stores run at a lower CPU priority than the
copy (a thread's own nice value on Linux), and the copy's threads keep theirs."""
from __future__ import annotations

import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from ingest.stages import STORE_NICE, _yield_to_the_copy


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice values are Linux's")
def test_early_store_threads_yield_to_the_copy() -> None:
    base = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    def nice_here() -> int:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    with ThreadPoolExecutor(max_workers=2, initializer=_yield_to_the_copy) as pool:
        inside = {pool.submit(nice_here).result() for _ in range(4)}
    with ThreadPoolExecutor(max_workers=1) as other:  # the copy's own threads are untouched
        assert other.submit(nice_here).result() == base
    assert inside == {min(19, base + STORE_NICE)}
    assert nice_here() == base
