"""In a real headless browser (Debian's chromium via Playwright): the case page's sync player with
two recordings (one starting 2 s after the other), and a recipient downloading a shared package."""
from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import bagit
import pytest
import uvicorn

from catalog.models import Media, MediaLink
from conftest import free_port
from share_support import add_copy, create, token_of, unzip
from web.app import create_app
from web_support import PASSWORD, _store_media, events, have_chromium, sample_video, seed  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.skipif(not have_chromium(), reason="needs /usr/bin/chromium")]

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
LATER = 2.0  # the second recording starts this many seconds after the first


@pytest.fixture
def server(make_app, sample_video, tmp_path: Path, sqlite_url: str) -> Iterator[tuple]:  # noqa: ANN001
    from ingest.simulate import make_video  # noqa: PLC0415 - heavy ffmpeg helper, as in web_support

    app = make_app(catalog_url=sqlite_url)
    sd = seed(app, sample_video)
    second = make_video(tmp_path / "second.mp4", seconds=4.0, gop=25, source="smptebars",
                        extra=["-movflags", "+faststart"])
    with app.catalog.session() as s:
        first = s.get(Media, sd.media_u1)
        m = _store_media(app, s, second, None, kind="video", device_id=first.device_id, officer_id=None,
                         officer_badge="P00002", unit_code=first.unit_code, original_path="DCIM/B.mp4",
                         original_name="B.mp4", recorded_start=first.recorded_start + timedelta(seconds=LATER),
                         duration_seconds=4.0, time_source="container")
        s.add(MediaLink(media_id=m.id, case_id=s.get(MediaLink, sd.link_u1).case_id, method="manual", score=1.0,
                        reason="second officer's camera"))
        second_id = m.id
    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(create_app(app), host="127.0.0.1", port=port, log_level="warning"))
    th = threading.Thread(target=srv.run, daemon=True)
    th.start()
    deadline = time.time() + 30
    while not srv.started:
        assert time.time() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield app, sd, second_id, f"http://127.0.0.1:{port}"
    srv.should_exit = True
    th.join(15)


@pytest.fixture
def browser() -> Iterator:  # noqa: ANN001
    from playwright.sync_api import sync_playwright  # noqa: PLC0415 - loaded only for browser tests

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def times(page, a: int, b: int) -> list[float]:  # noqa: ANN001
    return page.evaluate(f"[document.getElementById('sync-video-{a}').currentTime,"
                         f" document.getElementById('sync-video-{b}').currentTime]")


def seek_to(page, t: float) -> None:  # noqa: ANN001
    page.evaluate("t => { const s = document.getElementById('sync-seek'); s.value = String(t);"
                  " s.dispatchEvent(new Event('input')); }", t)


def settle(page, a: int, b: int, want: tuple[float, float]) -> list[float]:  # noqa: ANN001
    """Wait until both players report the wanted positions (seeks complete asynchronously)."""
    deadline = time.time() + 15
    got = times(page, a, b)
    while time.time() < deadline and not all(abs(g - w) < 0.15 for g, w in zip(got, want)):
        time.sleep(0.05)
        got = times(page, a, b)
    return got


def test_sync_player_and_recipient_download(server, browser, tmp_path: Path) -> None:  # noqa: ANN001
    app, sd, second, base = server
    first = sd.media_u1
    ctx = browser.new_context(bypass_csp=True)
    page = ctx.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(f"{base}/login")
    page.fill("#username", "rev")
    page.fill("#password", PASSWORD)
    page.click("#login-submit")
    page.wait_for_load_state()
    page.goto(f"{base}/cases/{sd.case_u1}")
    page.wait_for_selector("#sync")
    assert page.locator("#sync .sync-item").count() == 2
    page.wait_for_function(f"document.getElementById('sync-video-{first}').readyState >= 1 &&"
                           f" document.getElementById('sync-video-{second}').readyState >= 1", timeout=30000)
    assert float(page.get_attribute("#sync-seek", "max")) == pytest.approx(LATER + 4.0)

    # One seek moves both; before its start the later recording waits at its first frame.
    seek_to(page, 1.0)
    assert settle(page, first, second, (1.0, 0.0)) == pytest.approx([1.0, 0.0], abs=0.15)
    assert "waiting" in page.get_attribute(f".sync-item[data-media='{second}']", "class")
    seek_to(page, 3.0)
    assert settle(page, first, second, (3.0, 1.0)) == pytest.approx([3.0, 1.0], abs=0.15)
    assert "waiting" not in page.get_attribute(f".sync-item[data-media='{second}']", "class")
    # ←/→ by a second, on the shared timeline.
    page.click("#sync h2")  # focus out of any input
    page.keyboard.press("ArrowLeft")
    assert settle(page, first, second, (2.0, 0.0)) == pytest.approx([2.0, 0.0], abs=0.15)
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    assert settle(page, first, second, (4.0, 2.0)) == pytest.approx([4.0, 2.0], abs=0.15)
    assert "ended" in page.get_attribute(f".sync-item[data-media='{first}']", "class")

    # Play from 0.5 s: the later recording joins when the timeline reaches 2 s (space plays, K pauses).
    seek_to(page, 0.5)
    settle(page, first, second, (0.5, 0.0))
    page.keyboard.press(" ")
    page.wait_for_function("document.getElementById('sync').getAttribute('data-playing') === 'forward'")
    assert page.evaluate(f"document.getElementById('sync-video-{second}').paused") is True
    page.wait_for_function(f"parseFloat(document.getElementById('sync').getAttribute('data-position')) > {LATER + 0.8}",
                           timeout=20000)
    state = page.evaluate(f"""[document.getElementById('sync-video-{first}').paused,
        document.getElementById('sync-video-{second}').paused,
        document.getElementById('sync-video-{first}').currentTime,
        document.getElementById('sync-video-{second}').currentTime,
        parseFloat(document.getElementById('sync').getAttribute('data-position'))]""")
    a_paused, b_paused, a_t, b_t, pos = state
    assert not a_paused and not b_paused, state
    assert b_t > 0.3 and abs((a_t - b_t) - LATER) < 0.5, state  # in step on the shared timeline
    page.keyboard.press("k")
    page.wait_for_function("document.getElementById('sync').getAttribute('data-playing') === 'no'")
    # L plays, L again doubles; J goes backwards.
    page.keyboard.press("l")
    page.keyboard.press("l")
    assert page.get_attribute("#sync", "data-rate") == "2"
    page.keyboard.press("k")
    before = float(page.get_attribute("#sync", "data-position"))
    page.keyboard.press("j")
    page.wait_for_function(f"parseFloat(document.getElementById('sync').getAttribute('data-position')) < {before - 0.3}")
    page.keyboard.press("k")

    # Mark a segment in/out on the shared timeline: each recording's own times are given.
    seek_to(page, 2.5)
    page.keyboard.press("i")
    seek_to(page, 3.5)
    page.click("#sync-out")
    segs = {li.get_attribute("data-media"): (float(li.get_attribute("data-from")), float(li.get_attribute("data-to")))
            for li in page.locator("#sync-segment-items li").all()}
    assert segs == {str(first): (2.5, 3.5), str(second): (0.5, 1.5)}
    # Each recording's segment opens its redaction form with those times filled in.
    link = page.locator(f"#sync-segment-items li[data-media='{second}'] a.sync-redact")
    assert link.get_attribute("href") == f"/media/{second}/redact?from=0.5&to=1.5"
    link.click()
    page.wait_for_selector("#redact-from")
    assert (page.input_value("#redact-from"), page.input_value("#redact-to")) == ("0.5", "1.5")
    assert not [e for e in errors if "Content Security Policy" in e], errors
    ctx.close()
    assert {e.media_id for e in events(app, action="streamed", actor="rev")} == {first, second}

    # A recipient (no account) opens the link, gives the code, downloads the package.
    add_copy(app, first, approved=True)
    out = create(app, "rev", f"case:{sd.case_u1}", "--to", "隐患曝光台", "--kind", "public", "--code",
                 "--downloads", "1")
    url = f"{base}/s/{token_of(out)}"
    ctx = browser.new_context(accept_downloads=True)  # CSP enforced on the recipient's pages
    page = ctx.new_page()
    violations: list[str] = []
    page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
    page.goto(url)
    page.fill("#code", out["code"])
    page.click("#code-submit")
    page.wait_for_selector("#recv-download")
    assert out["items"][0]["sha256"] in page.inner_text("#recv-items")
    with page.expect_download() as dl:
        page.click("#recv-download")
    archive = tmp_path / "dl"
    archive.mkdir()
    bag_dir = unzip(Path(dl.value.path()).read_bytes(), archive)
    bagit.Bag(str(bag_dir)).validate()
    page.goto(url)  # the page now says no downloads are left
    assert page.inner_text("#recv-left").strip() == "0"
    page.click("#recv-receipt")
    page.wait_for_selector("#receipt-downloads")
    assert out["items"][0]["sha256"] in page.content()
    assert not violations, violations
    ctx.close()
    recipient = [e for e in events(app, actor="recipient")]
    assert {(e.action, e.outcome) for e in recipient} >= {("share_unlocked", "ok"), ("share_viewed", "ok"),
                                                           ("share_downloaded", "ok")}
    assert all(e.remote_addr == "127.0.0.1" and "Chrome" in e.detail["user_agent"] for e in recipient)
