"""Is an MP4/MOV complete and playable?  Answered from its index, without decoding (issue 14).

A camera's MP4 lists every sample in its `moov` box: sizes (`stsz`), chunk offsets (`stco` /
`co64`) and which samples sit in which chunk (`stsc`).  A file is taken as complete when

* its top-level boxes tile the file exactly (a file cut off mid-write leaves a box that runs
  past the end, or no `moov` at all),
* it has one track of the wanted kind (`vide` for video, `soun` for audio) with samples and a
  positive duration, whose tables agree with each other (as many samples in the chunks as
  sizes), and
* every chunk starts inside the file and the last sample ends inside an `mdat` box.

That costs a few header reads and the `moov` box (hundreds of KB for an hour), where the
decode check (ffprobe, then ffmpeg over the last seconds) costs two processes and a decode.
Anything else - another container, a fragmented MP4, compact sample sizes, an index that
does not add up - returns None and the caller decodes, exactly as before: truncated, fake and
zero-byte files are still flagged by the decoder's own words.

The parser is deliberately small and kept here (ingest may not import the indexer); the
indexer's keyframe planner reads the same tables for its own purpose (indexer/mp4index.py).
"""
from __future__ import annotations

import os
import struct
from array import array
from collections.abc import Iterator
from pathlib import Path

MAX_MOOV_BYTES = 256 * 1024 * 1024  # a damaged size field must not make us read gigabytes
_CONTAINERS = {b"trak", b"mdia", b"minf", b"stbl"}
HANDLER = {"video": b"vide", "audio": b"soun"}


def boxes(buf: bytes, start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    """(type, payload start, payload end) of the boxes in buf[start:end]; stops at a bad size."""
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack_from(">I4s", buf, pos)
        head = 8
        if size == 1:
            if pos + 16 > end:
                return
            size, head = struct.unpack_from(">Q", buf, pos + 8)[0], 16
        elif size == 0:
            size = end - pos
        if size < head or pos + size > end:
            return
        yield kind, pos + head, pos + size
        pos += size


def _top_level(fd: int, total: int) -> tuple[list[tuple[bytes, int, int]], bool]:
    """The file's top-level boxes (header reads only) and whether they tile it exactly."""
    out: list[tuple[bytes, int, int]] = []
    pos = 0
    while pos < total:
        head = os.pread(fd, 16, pos)
        if len(head) < 8:
            return out, False
        size, kind = struct.unpack_from(">I4s", head, 0)
        hlen = 8
        if size == 1:
            if len(head) < 16:
                return out, False
            size, hlen = struct.unpack_from(">Q", head, 8)[0], 16
        elif size == 0:
            size = total - pos
        if size < hlen or pos + size > total:
            return out, False  # runs past the end: cut off
        out.append((kind, pos, pos + size))
        pos += size
    return out, True


def _u32s(buf: bytes, start: int, count: int) -> array:
    a = array("I")
    a.frombytes(buf[start:start + 4 * count])
    if a.itemsize != 4:
        raise ValueError("no 32-bit array type")
    a.byteswap()  # big-endian on disk; every host this runs on is little-endian
    return a


def _track_end(moov: bytes, a: int, b: int, want: bytes) -> tuple[int, int, int, list[int]] | None:
    """(samples, duration in track units, last sample end, chunk offsets) of the first track
    of handler `want` in moov[a:b], or None when it has none or its tables do not agree."""
    for kind, ta, tb in boxes(moov, a, b):
        if kind != b"trak":
            continue
        tables: dict[bytes, tuple[int, int]] = {}
        stack = [(ta, tb)]
        while stack:
            sa, sb = stack.pop()
            for k, ca, cb in boxes(moov, sa, sb):
                if k in _CONTAINERS:
                    stack.append((ca, cb))
                else:
                    tables.setdefault(k, (ca, cb))
        hdlr, mdhd = tables.get(b"hdlr"), tables.get(b"mdhd")
        if hdlr is None or moov[hdlr[0] + 8:hdlr[0] + 12] != want:
            continue
        if mdhd is None or b"stsz" not in tables or b"stsc" not in tables:
            return None
        version = moov[mdhd[0]]
        duration = (struct.unpack_from(">Q", moov, mdhd[0] + 24)[0] if version == 1
                    else struct.unpack_from(">I", moov, mdhd[0] + 16)[0])
        za, _ = tables[b"stsz"]
        uniform, count = struct.unpack_from(">II", moov, za + 4)
        sizes = None if uniform else _u32s(moov, za + 12, count)
        if sizes is not None and len(sizes) != count:
            return None
        if b"stco" in tables:
            oa, _ = tables[b"stco"]
            n = struct.unpack_from(">I", moov, oa + 4)[0]
            offsets = list(_u32s(moov, oa + 8, n))
        elif b"co64" in tables:
            oa, _ = tables[b"co64"]
            n = struct.unpack_from(">I", moov, oa + 4)[0]
            offsets = list(struct.unpack_from(f">{n}Q", moov, oa + 8))
        else:
            return None
        sa_, _ = tables[b"stsc"]
        runs = struct.unpack_from(">I", moov, sa_ + 4)[0]
        stsc = _u32s(moov, sa_ + 8, 3 * runs)
        if len(offsets) != n or len(stsc) != 3 * runs or runs == 0 or n == 0:
            return None
        # Samples per chunk, run by run; the last run lasts to the last chunk.
        total = 0
        last_spc = 0
        for r in range(runs):
            first, spc = stsc[3 * r], stsc[3 * r + 1]
            upto = stsc[3 * (r + 1)] if r + 1 < runs else n + 1
            if first < 1 or upto <= first or upto > n + 1:
                return None
            total += (upto - first) * spc
            last_spc = spc
        if total != count or count == 0 or last_spc == 0:
            return None
        last_bytes = uniform * last_spc if sizes is None else sum(sizes[count - last_spc:])
        return count, duration, offsets[-1] + last_bytes, offsets
    return None


def complete_by_index(path: Path, kind: str) -> bool | None:
    """True when the index shows a complete, playable file of this kind; None when it cannot
    tell (not an MP4 it understands, cut off, tables that disagree): decode then."""
    want = HANDLER.get(kind)
    if want is None:
        return None
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        total = os.fstat(fd).st_size
        if os.pread(fd, 8, 0)[4:8] != b"ftyp":
            return None
        boxes, tiled = _top_level(fd, total)
        if not tiled:
            return None
        moovs = [(a, b) for k, a, b in boxes if k == b"moov"]
        mdats = [(a, b) for k, a, b in boxes if k == b"mdat"]
        if len(moovs) != 1 or not mdats or any(k == b"moof" for k, _, _ in boxes):
            return None
        a, b = moovs[0]
        if b - a > MAX_MOOV_BYTES:
            return None
        moov = os.pread(fd, b - a, a)
        if len(moov) != b - a:
            return None
        found = _track_end(moov, 8, len(moov), want)
        if found is None:
            return None
        count, duration, end, offsets = found
        if duration <= 0 or count <= 0:
            return None
        if min(offsets) < 0 or max(offsets) >= total:
            return None
        if not any(ma <= offsets[-1] and end <= mb for ma, mb in mdats):
            return None  # the last sample is not inside the media data
        return True
    except (OSError, struct.error, ValueError, IndexError):
        return None
    finally:
        os.close(fd)
