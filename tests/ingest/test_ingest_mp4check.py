"""Issue 14: playability from the MP4 index.  A complete file passes without any decoder; a
cut, fake, empty or index-less file is left to the decoder (the caller's old path), so it is
flagged exactly as before."""
from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest

from ingest import quickcheck
from ingest.mp4check import complete_by_index
from ingest.simulate import make_audio, make_video

pytestmark = pytest.mark.usefixtures("ffmpeg_ok")


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("clips")
    return {
        "video": make_video(d / "v.mp4", 2.0),
        "faststart": make_video(d / "fs.mp4", 2.0, extra=["-movflags", "+faststart"]),
        "silent": make_video(d / "s.mp4", 1.0, audio=False),
        "m4a": make_audio(d / "a.m4a", 1.0, fmt="m4a"),
        "fragmented": make_video(d / "frag.mp4", 2.0, extra=["-movflags", "frag_keyframe+empty_moov"]),
    }


def _cut(src: Path, dst: Path, keep: int) -> Path:
    dst.write_bytes(src.read_bytes()[:keep])
    return dst


def test_complete_files_pass_from_the_index(clips: dict[str, Path]) -> None:
    assert complete_by_index(clips["video"], "video") is True
    assert complete_by_index(clips["faststart"], "video") is True
    assert complete_by_index(clips["silent"], "video") is True
    assert complete_by_index(clips["video"], "audio") is True  # its AAC track
    assert complete_by_index(clips["m4a"], "audio") is True


def test_what_the_index_cannot_vouch_for_is_left_to_the_decoder(clips: dict[str, Path], tmp_path: Path) -> None:
    v = clips["video"]
    size = v.stat().st_size
    assert complete_by_index(clips["silent"], "audio") is None  # no audio track
    assert complete_by_index(clips["m4a"], "video") is None
    assert complete_by_index(clips["fragmented"], "video") is None
    for keep in (0, 7, 100, size // 2, size - 1):  # cut anywhere
        assert complete_by_index(_cut(v, tmp_path / f"cut{keep}.mp4", keep), "video") is None, keep
    fs = clips["faststart"]  # moov first: a cut in the media data leaves boxes past the end
    assert complete_by_index(_cut(fs, tmp_path / "fscut.mp4", fs.stat().st_size - 1000), "video") is None
    fake = tmp_path / "fake.mp4"
    fake.write_bytes(os.urandom(50_000))
    assert complete_by_index(fake, "video") is None
    assert complete_by_index(tmp_path / "missing.mp4", "video") is None


def test_an_index_pointing_past_its_media_data_is_not_trusted(clips: dict[str, Path], tmp_path: Path) -> None:
    """Boxes tile the file, but the last chunk offset claims bytes beyond the mdat."""
    data = bytearray(clips["video"].read_bytes())
    at = data.find(b"stco")
    assert at > 0
    n = struct.unpack_from(">I", data, at + 8)[0]
    last = at + 12 + 4 * (n - 1)
    struct.pack_into(">I", data, last, len(data) + 10)
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(bytes(data))
    assert complete_by_index(bad, "video") is None


def test_quickcheck_needs_no_decoder_for_a_complete_mp4(clips: dict[str, Path], tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "no-tools-here"))  # ffprobe/ffmpeg cannot be started
    assert quickcheck.check(clips["video"], "video", clips["video"].stat().st_size) == quickcheck.Check(True)
    with pytest.raises(FileNotFoundError):  # a cut file still goes to the decoder
        quickcheck.check(_cut(clips["video"], tmp_path / "c.mp4", 5000), "video", 5000)


def test_cut_files_are_flagged_by_the_decoder_as_before(clips: dict[str, Path], tmp_path: Path) -> None:
    v = clips["video"]
    cut = _cut(v, tmp_path / "cut.mp4", v.stat().st_size // 2)
    chk = quickcheck.check(cut, "video", cut.stat().st_size)
    assert not chk.ok and chk.reason and chk.reason.startswith(("ffprobe:", "ffmpeg decode:", "no duration")), chk
