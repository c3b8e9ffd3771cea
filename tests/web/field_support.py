"""A real `custody serve` on a free port for the field-upload and API tests (issue 15)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from catalog.tokens import enrol_device
from conftest import ROOT, free_port


class Server:
    """`custody serve` as a subprocess; `kill()` is a SIGKILL, `start()` brings it back on the same port."""

    def __init__(self, config: Path, home: Path) -> None:
        self.config, self.home = config, home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.env = {**os.environ, "CUSTODY_HOME": str(home), "PYTHONPATH": str(ROOT)}
        self.log = open(home / f"serve-{self.port}.log", "ab")

    def start(self) -> "Server":
        self.proc = subprocess.Popen([sys.executable, "-m", "custody.cli", "--config", str(self.config), "serve",
                                      "--host", "127.0.0.1", "--port", str(self.port)],
                                     env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 60
        while True:
            assert self.proc.poll() is None, (self.home / f"serve-{self.port}.log").read_text()[-3000:]
            try:
                httpx.options(f"{self.url}/api/v1/uploads/", timeout=2)
                return self
            except httpx.TransportError:
                assert time.time() < deadline, "custody serve did not answer within 60 s"
                time.sleep(0.2)

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(20)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()

    def cli(self, *args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        r = subprocess.run([sys.executable, "-m", "custody.cli", "--config", str(self.config), *args],
                           env=self.env, input=stdin, capture_output=True, text=True, timeout=120)
        if check:
            assert r.returncode == 0, f"custody {' '.join(args)}: {r.returncode}\n{r.stdout}\n{r.stderr}"
        return r

    def enrol(self, serial: str, *user: str) -> str:
        """`custody devices enrol SERIAL --json`, the command an administrator runs."""
        out = json.loads(self.cli(*user, "devices", "enrol", serial, "--json").stdout)
        assert out["serial"] == serial and out["token"]
        return out["token"]

    def enrol_here(self, app, serial: str) -> str:  # noqa: ANN001 - catalog.app.App
        """The same enrolment in this process (saves a CLI start where the command is not under test)."""
        with app.catalog.session() as s:
            return enrol_device(s, serial, "test", app.station)[0]


def wait_state(url: str, token: str, want: str = "stored", timeout: float = 60) -> httpx.Response:
    """HEAD an upload until its Custody-State is `want`."""
    deadline = time.time() + timeout
    while True:
        r = httpx.head(url, headers={"Authorization": f"Bearer {token}", "Tus-Resumable": "1.0.0"}, timeout=10)
        if r.headers.get("custody-state") == want:
            return r
        assert time.time() < deadline, f"upload never reached {want}: {r.status_code} {dict(r.headers)}"
        time.sleep(0.2)


@pytest.fixture(name="server")
def server_fixture(make_app, tmp_path):  # noqa: ANN001, ANN201
    """A running `custody serve` on the embedded catalog (`server.app`: the same catalog in this process)."""
    app = make_app()
    srv = Server(app.settings.config_path, tmp_path).start()
    srv.app = app
    yield srv
    srv.stop()
