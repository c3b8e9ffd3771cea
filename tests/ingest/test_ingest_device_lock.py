"""The device lock tells this station's own second volume of a device apart from another
process (issue 13: a retry of the same daemon was reported as "another process")."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ingest.spool import DeviceBusy, Spool


def test_same_process_is_not_called_another_process(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    with spool.lock("SIMGAT00"):
        with pytest.raises(DeviceBusy) as ei:
            with spool.lock("SIMGAT00"):
                pass
        assert "another process" not in str(ei.value) and "another volume" in str(ei.value)
        with spool.lock("SIMDCI01"):  # another device is free
            pass
    with spool.lock("SIMGAT00"):  # released: free again
        pass


def test_another_process_is_named_as_such(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    root = Path(__file__).resolve().parents[2]
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; sys.path.insert(0, %r)\n"
        "from ingest.spool import Spool\n"
        "with Spool(%r).lock('SIMGAT00'):\n"
        "    print('held', flush=True); time.sleep(30)\n") % (str(root), str(tmp_path / "spool"))],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(DeviceBusy) as ei:
            with spool.lock("SIMGAT00"):
                pass
        assert "another process" in str(ei.value)
    finally:
        holder.kill()
        holder.wait()
