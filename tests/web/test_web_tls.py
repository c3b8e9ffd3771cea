"""Issue 17, transport: `custody serve --certfile --keyfile` speaks HTTPS (a real browser logs in
over it with a self-signed certificate), HSTS on HTTPS, cookies always Secure in production
mode, plain HTTP refused in production unless behind a declared TLS proxy, and forwarded
headers trusted only from the configured proxies."""
from __future__ import annotations

import ipaddress
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from fastapi.testclient import TestClient

from conftest import ROOT, free_port
from web.app import create_app
from web_support import CSRF_RE, PASSWORD, events, have_chromium, login, sample_video, seed  # noqa: F401

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "custody.test")])
    now = datetime.now(timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def _serve(app, tmp_path: Path, *extra: str) -> tuple[subprocess.Popen, int]:  # noqa: ANN001
    port = free_port()
    env = {**os.environ, "CUSTODY_HOME": str(tmp_path), "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "custody.cli", "--config", str(app.settings.config_path),
                             "serve", "--host", "127.0.0.1", "--port", str(port), *extra],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    return proc, port


@pytest.fixture
def https_server(make_app, sample_video, sqlite_url: str, tmp_path: Path) -> Iterator[tuple]:  # noqa: ANN001
    app = make_app(catalog_url=sqlite_url, extra="[web]\nproduction = true\n")
    sd = seed(app, sample_video)
    cert, key = self_signed(tmp_path)
    proc, port = _serve(app, tmp_path, "--certfile", str(cert), "--keyfile", str(key))
    base = f"https://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            try:
                httpx.get(f"{base}/login", verify=False, timeout=2)
                break
            except httpx.TransportError:
                assert time.time() < deadline, "custody serve did not answer over HTTPS within 60 s"
                time.sleep(0.3)
        yield app, sd, base
    finally:
        proc.terminate()
        proc.wait(20)


@pytest.mark.browser
@pytest.mark.skipif(not have_chromium(), reason="needs /usr/bin/chromium")
def test_browser_logs_in_over_https_with_a_self_signed_certificate(https_server) -> None:  # noqa: ANN001
    from playwright.sync_api import sync_playwright

    app, sd, base = https_server
    r = httpx.get(f"{base}/login", verify=False)
    assert r.headers["strict-transport-security"].startswith("max-age=")
    assert "secure" in r.headers["set-cookie"].lower()
    with pytest.raises(httpx.TransportError):  # the certificate is not trusted by default: it really is TLS
        httpx.get(f"{base}/login")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            ctx = browser.new_context(ignore_https_errors=True)
            page = ctx.new_page()
            page.goto(f"{base}/login")
            page.fill("#username", "rev")
            page.fill("#password", PASSWORD)
            page.click("#login-submit")
            page.wait_for_load_state()
            assert page.url.startswith(base) and page.url.endswith("/search"), page.url
            cookie = next(c for c in ctx.cookies() if c["name"] == "custody_session")
            assert cookie["secure"] and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
        finally:
            browser.close()
    ok = [e for e in events(app, action="login") if e.outcome == "ok" and e.actor == "rev"]
    assert ok and ok[-1].remote_addr == "127.0.0.1"


def test_production_refuses_plain_http_unless_behind_a_tls_proxy(make_app, sqlite_url: str, tmp_path: Path) -> None:
    app = make_app(catalog_url=sqlite_url, extra="[web]\nproduction = true\n")
    proc, _ = _serve(app, tmp_path)
    out = proc.communicate(timeout=60)[0].decode()
    assert proc.returncode == 2 and "behind_tls_proxy" in out, out


def test_proxy_headers_are_trusted_only_from_the_proxy(make_app, sqlite_url: str, sample_video) -> None:  # noqa: ANN001
    app = make_app(catalog_url=sqlite_url, extra="[web]\nproduction = true\nbehind_tls_proxy = true\n"
                                                  "trusted_proxies = [\"127.0.0.1\"]\n")
    seed(app, sample_video)
    api = create_app(app)
    fwd = {"x-forwarded-proto": "https", "x-forwarded-for": "203.0.113.5"}
    with TestClient(api, client=("127.0.0.1", 40000), headers=fwd, base_url="http://custody.test") as proxy:
        page = proxy.get("/login")
        assert page.status_code == 200
        assert page.headers["strict-transport-security"].startswith("max-age=")
        assert "secure" in page.headers["set-cookie"].lower()
        token = CSRF_RE.search(page.text).group(1)
        # The Secure cookie travels browser -> proxy over HTTPS; the proxy's hop here is plain HTTP,
        # on which the test client (rightly) would not send it: the proxy passes it on as a header.
        r = proxy.post("/login", data={"username": "rev", "password": PASSWORD, "csrf": token},
                       headers={"cookie": f"custody_login_csrf={token}"}, follow_redirects=False)
        assert r.status_code == 303 and "secure" in r.headers["set-cookie"].lower()
    ok = [e for e in events(app, action="login") if e.outcome == "ok"]
    assert ok[-1].remote_addr == "203.0.113.5"
    # Anyone else sending the same headers is not believed: plain HTTP, refused in production.
    with TestClient(api, client=("198.51.100.7", 40001), headers=fwd, base_url="http://custody.test") as other:
        assert other.get("/login").status_code == 400
    refused = events(app, action="refused")
    assert refused[-1].remote_addr == "198.51.100.7"


def test_hsts_only_over_https_and_production_cookies_secure(make_app, sqlite_url: str, sample_video) -> None:  # noqa: ANN001
    app = make_app(catalog_url=sqlite_url)
    seed(app, sample_video)
    with TestClient(create_app(app)) as plain:
        r = plain.get("/login")
        assert "strict-transport-security" not in r.headers and "secure" not in r.headers["set-cookie"].lower()
    with TestClient(create_app(app), base_url="https://testserver") as tls:
        r = tls.get("/login")
        assert r.headers["strict-transport-security"] == "max-age=31536000"
        login(tls, "rev")
