"""`custody serve` really serves: a subprocess on a free port answers the login page."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx

from conftest import ROOT, free_port


def test_custody_serve_answers(make_app, tmp_path) -> None:  # noqa: ANN001
    app = make_app()
    port = free_port()
    env = {**os.environ, "CUSTODY_HOME": str(tmp_path), "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "custody.cli", "--config", str(app.settings.config_path),
                             "serve", "--host", "127.0.0.1", "--port", str(port)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 60
        while True:
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/login", timeout=2)
                break
            except httpx.TransportError:
                assert time.time() < deadline, "custody serve did not answer within 60 s"
                time.sleep(0.3)
        assert r.status_code == 200 and 'name="csrf"' in r.text and "custody_login_csrf" in r.headers["set-cookie"]
        assert httpx.get(f"http://127.0.0.1:{port}/admin", timeout=5).status_code == 401
    finally:
        proc.terminate()
        proc.wait(20)
