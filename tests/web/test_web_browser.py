"""End to end in a real headless browser (Debian's chromium via Playwright).

A reviewer logs in, searches a case, opens it, sees its keyframes, plays the recording
from a keyframe's offset (the video element becomes playable and seeks), exports the
case; an auditor then finds every one of those actions in the custody log.
"""
from __future__ import annotations

import subprocess
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from conftest import free_port
from web.app import create_app
from web_support import PASSWORD, events, have_chromium, sample_video, seed  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.skipif(not have_chromium(), reason="needs /usr/bin/chromium")]

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture
def server(make_app, sample_video, catalog_url: str) -> Iterator[tuple]:  # noqa: ANN001
    app = make_app(catalog_url=catalog_url)
    sd = seed(app, sample_video)
    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(create_app(app), host="127.0.0.1", port=port, log_level="warning"))
    th = threading.Thread(target=srv.run, daemon=True)
    th.start()
    deadline = time.time() + 30
    while not srv.started:
        assert time.time() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield app, sd, f"http://127.0.0.1:{port}"
    srv.should_exit = True
    th.join(15)


@pytest.fixture
def browser() -> Iterator:  # noqa: ANN001
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def log_in(page, base: str, username: str) -> None:  # noqa: ANN001
    page.goto(f"{base}/login")
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.click("#login-submit")
    page.wait_for_load_state()
    assert "/login" not in page.url, page.content()[:500]


@pytest.mark.parametrize("catalog_url", ["sqlite"], indirect=True)
def test_reviewer_journey_is_in_the_custody_log(server, browser, tmp_path: Path) -> None:  # noqa: ANN001
    app, sd, base = server
    # bypass_csp: Playwright evaluates its probes as strings, which the app's CSP rightly forbids.
    ctx = browser.new_context(accept_downloads=True, bypass_csp=True)
    page = ctx.new_page()
    log_in(page, base, "rev")
    assert page.url.endswith("/search")

    # Search by (part of) the case number, open the case.
    page.fill("#q-case", "001")
    page.click("#q-submit")
    page.wait_for_selector("#case-results a.case-link")
    page.click("#case-results a.case-link")
    page.wait_for_selector("#case-no")
    assert page.inner_text("#case-no") == sd.case_u1
    assert "东方化工有限公司" in page.content()

    # Keyframes: every strip image really loaded from the store.
    page.wait_for_function("Array.from(document.querySelectorAll('a.keyframe img'))"
                           ".every(i => i.complete && i.naturalWidth > 0)")
    assert page.locator("a.keyframe img").count() == 4

    # Click the keyframe at 2 s: the player opens at that moment.
    page.click("a.keyframe[data-offset='2.0']")
    page.wait_for_selector("#player")
    page.wait_for_function("document.getElementById('player').readyState >= 3", timeout=30000)
    started = page.evaluate("document.getElementById('player').currentTime")
    assert 1.5 <= started <= 4.0, started
    seeked = page.evaluate("""() => new Promise((resolve, reject) => {
        const v = document.getElementById('player');
        v.pause();
        const t = setTimeout(() => reject(new Error('no seeked event')), 20000);
        v.addEventListener('seeked', () => { clearTimeout(t); resolve([v.currentTime, v.readyState]); }, {once: true});
        v.currentTime = 0.5;
    })""")
    assert abs(seeked[0] - 0.5) < 0.3 and seeked[1] >= 1, seeked
    assert page.evaluate("document.getElementById('player').error") is None

    # Export from the case page: a zipped bag that verifies with sha256sum.
    page.goto(f"{base}/cases/{sd.case_u1}")
    with page.expect_download() as dl:
        page.click("#export")
    archive = tmp_path / "export.zip"
    dl.value.save_as(archive)
    with zipfile.ZipFile(archive) as z:
        z.extractall(tmp_path / "bag")
    (bag,) = list((tmp_path / "bag").iterdir())
    for manifest in ("tagmanifest-sha256.txt", "manifest-sha256.txt"):
        res = subprocess.run(["sha256sum", "-c", manifest], cwd=bag, capture_output=True, text=True)
        assert res.returncode == 0, res.stdout + res.stderr

    # English is one click away.
    page.click("#lang-switch")
    page.wait_for_load_state()
    assert "Log out" in page.inner_text("#logout")
    page.click("#logout")
    page.wait_for_load_state()
    ctx.close()

    # Every step is in the custody log, as the reviewer, from the browser's address.
    mine = [e for e in events(app, actor="rev") if e.outcome == "ok"]
    actions = {(e.action, e.subject) for e in mine}
    assert ("login", "account:rev") in actions and ("searched", "search") in actions
    assert ("viewed", f"case:{sd.case_u1}") in actions and ("viewed", f"media:{sd.media_u1}") in actions
    assert {f"derivative:{d}" for d in sd.frames} <= {s for a, s in actions if a == "viewed"}
    streams = [e for e in mine if e.action == "streamed"]
    assert streams and all(e.media_id == sd.media_u1 for e in streams)
    assert ("exported", f"case:{sd.case_u1}") in actions and ("logout", "account:rev") in actions
    assert all(e.remote_addr == "127.0.0.1" for e in mine)

    # The auditor reads the same trail in the browser (CSP enforced: the pages break no rule of it).
    ctx = browser.new_context()
    page = ctx.new_page()
    violations: list[str] = []
    page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
    log_in(page, base, "aud")
    page.goto(f"{base}/audit?actor=rev")
    cells = [c.get_attribute("data-action") for c in page.locator("#events td.action").all()]
    assert "查看" in page.locator("#events td.action").all_inner_texts()  # shown in the viewer's language
    for action in ("login", "searched", "viewed", "streamed", "exported", "logout"):
        assert action in cells, (action, cells)
    page.goto(f"{base}/media/{sd.media_u1}")
    trail = [c.get_attribute("data-action") for c in page.locator("#trail td.action").all()]
    assert "streamed" in trail and "exported" in trail
    assert page.locator("#player").count() == 0  # auditors read, they do not play
    page.goto(f"{base}/cases/{sd.case_u1}")
    assert page.locator("a.keyframe img").count() == 4
    page.goto(f"{base}/admin/reports?kind=ratio")
    assert not violations, violations
    ctx.close()
