"""Keyframes: planning from the packet index, scene changes, dark and duplicate frames, storage."""
from __future__ import annotations

from datetime import datetime
from pathlib import Path

import cv2
import numpy as np
import pytest
from indexer_support import add_media, add_user, ffmpeg, run_cli

from indexer import keyframes, mp4index
from catalog.models import Derivative, Media
from indexer.keyframes import Packet, plan
from indexer.worker import index_media
from ingest.simulate import make_photo, make_video

pytestmark = pytest.mark.usefixtures("ffmpeg_ok")

# Scenes of a test clip: (start, end, lavfi source).  Keyframes every 2 s (GOP 50 at 25 fps,
# scene-cut detection off in the encoder), and no scene starts on a keyframe, so the
# strip only shows them all if the planner finds the changes in the packet sizes.
SCENES = [(0.0, 2.6, "testsrc2"), (2.6, 5.3, "smptebars"), (5.3, 8.1, "mandelbrot"),
          (8.1, 10.7, "rgbtestsrc"), (10.7, 14.0, "cellauto=rule=30:seed=1")]  # seeded: the same clip on every run


def scene_clip(path: Path, scenes: list[tuple[float, float, str]], gop: int = 50) -> Path:
    args: list[str] = []
    chains = []
    for n, (a, b, src) in enumerate(scenes):
        sep = ":" if "=" in src else "="
        args += ["-f", "lavfi", "-i", f"{src}{sep}size=320x240:rate=25"]
        chains.append(f"[{n}:v]trim=duration={b - a:.3f},setpts=PTS-STARTPTS,format=yuv420p,setsar=1[s{n}]")
    graph = ";".join(chains) + ";" + "".join(f"[s{n}]" for n in range(len(scenes))) + \
        f"concat=n={len(scenes)}:v=1:a=0[v]"
    ffmpeg(*args, "-filter_complex", graph, "-map", "[v]", "-c:v", "libx264", "-preset", "ultrafast",
           "-g", str(gop), "-keyint_min", str(gop), "-sc_threshold", "0", "-pix_fmt", "yuv420p", "-f", "mp4", str(path))
    return path


def frame_of(clip: Path, t: float, out: Path) -> np.ndarray:
    """A reference picture decoded by ffmpeg itself (independent of the code under test)."""
    ffmpeg("-ss", f"{t:.3f}", "-i", str(clip), "-frames:v", "1", str(out))
    img = cv2.imread(str(out))
    assert img is not None
    return img


def signature(img: np.ndarray) -> np.ndarray:
    hsv = cv2.cvtColor(cv2.resize(img, (160, 120)), cv2.COLOR_BGR2HSV)
    h = cv2.calcHist([hsv], [0, 1, 2], None, [16, 4, 4], [0, 180, 0, 256, 0, 256])
    return cv2.normalize(h, h).flatten()


def stored_image(app, key: str) -> np.ndarray:  # noqa: ANN001
    data = b"".join(app.store.iter_bytes(key))
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert img is not None, f"{key} is not a JPEG"
    return img


def current_derivatives(app, media_id: int) -> list[Derivative]:  # noqa: ANN001
    with app.catalog.session() as s:
        return list(s.query(Derivative).filter(Derivative.media_id == media_id, Derivative.purged_at.is_(None))
                    .order_by(Derivative.offset_seconds))


# --------------------------------------------------------------------------- planning (pure)
def packets(seconds: float, fps: int = 25, gop: int = 25, p_size=lambda t: 1000, key_size=lambda t: 20000,
            extra_keys: tuple[float, ...] = ()) -> list[Packet]:
    out = []
    for i in range(int(seconds * fps)):
        t = round(i / fps, 6)
        key = i % gop == 0 or any(abs(t - k) < 1e-6 for k in extra_keys)
        out.append(Packet(t, key, key_size(t) if key else p_size(t)))
    return out


def test_plan_spreads_interval_picks_on_keyframes_and_respects_the_cap() -> None:
    picks = plan(packets(60), 60, interval=10, cap=40)
    assert [p.t for p in picks] == [0.0, 10.0, 20.0, 30.0, 40.0, 50.0]
    assert picks[0].reason == "first" and all(p.on_key for p in picks)
    capped = plan(packets(60), 60, interval=1, cap=6)
    assert len(capped) <= 6 and capped[-1].t >= 40  # fewer picks, still spread over the clip


def test_plan_finds_a_step_in_predicted_frame_sizes_and_uses_the_next_keyframe() -> None:
    pk = packets(60, p_size=lambda t: 1000 if t < 33.4 else 6000)
    picks = plan(pk, 60, interval=30, cap=40)
    scene = [p for p in picks if p.reason == "scene_change"]
    assert [p.t for p in scene] == [34.0]  # the scene lasts past the next keyframe: decode that alone
    assert scene[0].on_key


def test_plan_decodes_exactly_when_the_scene_is_gone_before_the_next_keyframe() -> None:
    pk = packets(60, p_size=lambda t: 6000 if 33.2 <= t < 33.6 else 1000)
    scene = [p for p in plan(pk, 60, interval=30, cap=40) if p.reason == "scene_change"]
    assert scene and abs(scene[0].t - 33.2) < 1e-6 and not scene[0].on_key


def test_plan_shows_a_cut_just_after_a_pick_of_the_previous_scene() -> None:
    # A change at 8.12 s is shown at the 10 s keyframe; the next cut comes 0.72 s later and is
    # gone (another change) before the 12 s keyframe, so it is decoded exactly.  The two frames
    # are closer than the minimum gap, but a detected cut lies between them.
    pk = packets(14, gop=50, p_size=lambda t: 1000 if t < 8.12 else 30 if t < 10.72 else 6000 if t < 11.2 else 30)
    picks = [(p.t, p.reason) for p in plan(pk, 14, interval=30, cap=12)]
    assert (10.0, "scene_change") in picks and (10.72, "scene_change") in picks, picks


def test_plan_takes_encoder_scene_cut_keyframes() -> None:
    pk = packets(60, extra_keys=(17.32,))
    scene = [p.t for p in plan(pk, 60, interval=30, cap=40) if p.reason == "scene_change"]
    assert 17.32 in scene


def test_plan_skips_interval_frames_where_nothing_moved() -> None:
    still = plan(packets(60, p_size=lambda t: 30), 60, interval=10, cap=40)  # a camera on a desk
    assert [p.t for p in still] == [0.0]
    moved = plan(packets(60, p_size=lambda t: 30 if t < 35 else 3000), 60, interval=10, cap=40)
    assert [p.t for p in moved if p.reason != "scene_change"] == [0.0, 40.0, 50.0]


def test_plan_ignores_steady_motion_noise() -> None:
    rng = np.random.default_rng(7)
    noise = {round(i / 25, 6): int(4000 * rng.uniform(0.8, 1.25)) for i in range(1500)}
    picks = plan(packets(60, p_size=lambda t: noise[t]), 60, interval=30, cap=40)
    assert [p.reason for p in picks] == ["first", "interval"]


# --------------------------------------------------------------------------- real clips
def test_strip_shows_each_scene_change(make_app, tmp_path: Path) -> None:
    app = make_app()
    clip = scene_clip(tmp_path / "scenes.mp4", SCENES)
    mid = add_media(app, clip, "video")
    index_media(app, mid)
    derivs = current_derivatives(app, mid)
    thumbs = [d for d in derivs if d.kind == "thumbnail"]
    keys = [d for d in derivs if d.kind == "keyframe"]
    assert len(thumbs) == len(keys) >= len(SCENES)
    assert len(keys) < 7 + 1, "more frames than the clip has keyframes: not a selection"
    sigs = [(d.offset_seconds, signature(stored_image(app, d.storage_key))) for d in thumbs]
    refs = [signature(frame_of(clip, (a + b) / 2, tmp_path / f"ref{i}.png")) for i, (a, b, _) in enumerate(SCENES)]
    for i, (a, b, src) in enumerate(SCENES):
        inside = [(t, sig) for t, sig in sigs if a <= t < b]
        assert inside, f"no keyframe inside scene {i} ({src}, {a}-{b} s): {[t for t, _ in sigs]}"
        # The picture is that scene's, not the previous one's: it matches its own reference best.
        best = max(inside, key=lambda ts: cv2.compareHist(ts[1], refs[i], cv2.HISTCMP_CORREL))
        scores = [cv2.compareHist(best[1], r, cv2.HISTCMP_CORREL) for r in refs]
        assert int(np.argmax(scores)) == i, f"scene {i} ({src}) frame at {best[0]} s looks like scene {np.argmax(scores)}"
    sheet = [d for d in derivs if d.kind == "contact_sheet"]
    assert len(sheet) == 1 and sheet[0].offset_seconds is None
    img = stored_image(app, sheet[0].storage_key)
    assert img.shape[1] == min(5, len(thumbs)) * 320
    with app.catalog.session() as s:
        stats = s.get(Media, mid).meta["keyframes"]
    assert stats["decoded"] < 14 * 25 / 5, "decoded a large share of the frames"


def test_near_black_frames_are_dropped(make_app, tmp_path: Path) -> None:
    app = make_app()
    clip = scene_clip(tmp_path / "covered.mp4", [(0.0, 3.3, "color=c=black"), (3.3, 7.0, "testsrc2")], gop=25)
    mid = add_media(app, clip, "video")
    index_media(app, mid)
    keys = [d for d in current_derivatives(app, mid) if d.kind == "keyframe"]
    assert keys and all(d.offset_seconds >= 3.3 for d in keys)
    for d in keys:
        assert cv2.cvtColor(stored_image(app, d.storage_key), cv2.COLOR_BGR2GRAY).mean() > 40
    with app.catalog.session() as s:
        assert s.get(Media, mid).meta["keyframes"]["dropped_dark"] >= 1


def test_a_wholly_black_clip_has_no_keyframes_but_is_indexed(make_app, tmp_path: Path) -> None:
    app = make_app()
    clip = scene_clip(tmp_path / "black.mp4", [(0.0, 4.0, "color=c=black")], gop=25)
    mid = add_media(app, clip, "video")
    index_media(app, mid)
    assert current_derivatives(app, mid) == []
    with app.catalog.session() as s:
        m = s.get(Media, mid)
        assert m.index_state == "done" and m.meta["keyframes"]["dropped_dark"] >= 1


def test_a_static_view_is_not_even_decoded_twice(make_app, tmp_path: Path) -> None:
    app = make_app(extra="[indexer]\nkeyframe_interval_seconds = 4\n")
    clip = scene_clip(tmp_path / "static.mp4", [(0.0, 16.0, "smptebars")], gop=25)
    mid = add_media(app, clip, "video")
    index_media(app, mid)
    keys = [d for d in current_derivatives(app, mid) if d.kind == "keyframe"]
    assert len(keys) == 1
    with app.catalog.session() as s:
        assert s.get(Media, mid).meta["keyframes"]["decoded"] == 1  # nothing moved: no more decodes


def test_a_noisy_but_unchanging_view_keeps_one_frame(make_app, tmp_path: Path) -> None:
    """Sensor noise keeps predicted frames large, so the frames are decoded; the scorer
    then finds them near-duplicates and keeps one."""
    app = make_app(extra="[indexer]\nkeyframe_interval_seconds = 4\n")
    clip = tmp_path / "noisy.mp4"
    ffmpeg("-f", "lavfi", "-i", "smptebars=size=320x240:rate=25:duration=16,noise=alls=14:allf=t", "-c:v", "libx264",
           "-preset", "ultrafast", "-g", "25", "-keyint_min", "25", "-sc_threshold", "0", "-pix_fmt", "yuv420p",
           str(clip))
    mid = add_media(app, clip, "video")
    index_media(app, mid)
    keys = [d for d in current_derivatives(app, mid) if d.kind == "keyframe"]
    assert len(keys) == 1
    with app.catalog.session() as s:
        stats = s.get(Media, mid).meta["keyframes"]
    assert stats["decoded"] >= 4 and stats["dropped_duplicate"] >= 3


def test_keyframes_on_s3_read_through_a_presigned_url(make_app, tmp_path: Path, s3_url: str, seaweed) -> None:  # noqa: ANN001
    app = make_app(storage_url=s3_url, endpoint=seaweed.endpoint)
    clip = scene_clip(tmp_path / "s3.mp4", SCENES[:3])
    mid = add_media(app, clip, "video")
    index_media(app, mid)
    with app.catalog.session() as s:
        m = s.get(Media, mid)
        assert m.meta["keyframes"]["read_from"] == "presigned"
        assert m.probe["format"]["format_name"].startswith("mov,mp4")
        url = app.store.presigned_url(m.storage_key, 60)
    # The index comes from the moov box over a few range requests, and equals a full local demux.
    assert mp4index.read_index(url) is not None
    assert keyframes.read_packets(url) == keyframes.demux_packets(str(clip))
    derivs = current_derivatives(app, mid)
    assert {d.kind for d in derivs} == {"keyframe", "thumbnail", "contact_sheet"}
    for d in derivs:
        assert app.store.head(d.storage_key) is not None
    add_user(app, "rev", "reviewer")
    out = tmp_path / "out"
    r = run_cli(app, "media", "keyframes", str(mid), "--out", str(out), user="rev")
    assert r.exit_code == 0, r.output
    files = sorted(out.glob("*.jpg"))
    assert len(files) == sum(d.kind == "keyframe" for d in derivs)
    assert all(cv2.imread(str(f)) is not None for f in files)
    # A photo is never read over a URL (exifread wants a file): streamed to a temporary copy.
    photo = make_photo(tmp_path / "p.jpg", datetime(2026, 5, 1, 10, 0, 0))
    pid = add_media(app, photo, "photo")
    index_media(app, pid)
    with app.catalog.session() as s:
        p = s.get(Media, pid)
        assert p.meta["keyframes"]["read_from"] == "tempfile"
        assert p.meta["technical"]["datetime_original"] == "2026:05:01 10:00:00"
    [th] = current_derivatives(app, pid)
    assert th.kind == "thumbnail" and app.store.head(th.storage_key) is not None


@pytest.mark.parametrize("fmt,movflags,from_tables", [
    ("mp4", [], True), ("mov", [], True), ("mp4", ["-movflags", "+faststart"], True),
    ("mp4", ["-movflags", "frag_keyframe+empty_moov"], False), ("mpegts", [], False), ("avi", [], False)])
def test_sample_tables_give_the_demuxers_index(tmp_path: Path, fmt: str, movflags: list[str],
                                               from_tables: bool) -> None:
    clip = tmp_path / f"clip.{fmt}"
    # B-frames (composition offsets) and a scene-cut keyframe off the GOP cadence.
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=3", "-f", "lavfi",
           "-i", "smptebars=size=320x240:rate=25:duration=2", "-filter_complex", "[0][1]concat=n=2:v=1:a=0",
           "-c:v", "libx264", "-preset", "medium", "-bf", "3", "-g", "50", *movflags, "-f", fmt, str(clip))
    assert (mp4index.read_index(str(clip)) is not None) == from_tables
    fast, slow = keyframes.read_packets(str(clip)), keyframes.demux_packets(str(clip))
    assert len(slow) == 125 and fast == slow
    assert sum(p.key for p in fast) >= 3


def test_a_damaged_moov_falls_back_to_demuxing(tmp_path: Path) -> None:
    clip = make_video(tmp_path / "c.mp4", 1.0, audio=False)
    data = bytearray(clip.read_bytes())
    i = data.find(b"stsz")
    data[i + 12:i + 16] = b"\xff\xff\xff\xff"  # an absurd sample count
    clip.write_bytes(bytes(data))
    assert mp4index.read_index(str(clip)) is None


def test_select_reports_a_file_without_video(tmp_path: Path) -> None:
    wav = tmp_path / "a.wav"
    ffmpeg("-f", "lavfi", "-i", "sine=duration=1", str(wav))
    with pytest.raises(keyframes.KeyframeError):
        keyframes.select(str(wav), 1.0, 30, 40)
