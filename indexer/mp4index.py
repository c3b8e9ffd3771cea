"""The packet index of an MP4/MOV video track, read from its sample tables.

An MP4 already lists every sample's size (`stsz`), which samples are keyframes (`stss`),
and their timing (`stts`, `ctts`) in the `moov` box.  Reading those few hundred kilobytes
gives the same index as demuxing the whole file (hundreds of megabytes) - the cheapest
possible first step of the keyframe stage.  Anything this reader does not handle
(fragmented MP4, compact sample sizes, other containers) returns None and the caller
demuxes instead.
"""
from __future__ import annotations

import os
import struct
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from core.lazy import lazy
from ingest.mp4check import MAX_MOOV_BYTES
from ingest.mp4check import boxes as _boxes  # one ISO-BMFF box walker for the ingest check and the indexer

if TYPE_CHECKING:
    import numpy as np
else:  # imported on first use: the CLI loads this module for light commands too (issue 14)
    np = lazy("numpy")

_CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl"}
HTTP_TIMEOUT_SECONDS = 30.0


@dataclass
class TrackIndex:
    pts_seconds: np.ndarray  # presentation time of each sample, in decode order
    keys: np.ndarray  # bool
    sizes: np.ndarray  # bytes


Reader = Callable[[int, int], bytes]  # (offset, length) -> bytes read there (fewer at the end)


def _find_moov(read: Reader, size_total: int) -> bytes | None:
    """Walk the top-level boxes (header reads only) to the `moov` box and read it whole."""
    pos = 0
    while pos + 8 <= size_total:
        head = read(pos, 16)
        if len(head) < 8:
            return None
        size, kind = struct.unpack_from(">I4s", head, 0)
        hlen = 8
        if size == 1 and len(head) >= 16:
            size, hlen = struct.unpack_from(">Q", head, 8)[0], 16
        elif size == 0:
            size = size_total - pos
        if size < hlen:
            return None
        if kind == b"moof":
            return None  # fragmented: the sample tables are spread over the file
        if kind == b"moov":
            if size > MAX_MOOV_BYTES:
                return None
            data = read(pos, size)
            return data if len(data) == size else None
        pos += size
    return None


def _file_moov(path: str) -> bytes | None:
    fd = os.open(path, os.O_RDONLY)
    try:
        return _find_moov(lambda pos, n: os.pread(fd, n, pos), os.fstat(fd).st_size)
    finally:
        os.close(fd)


def _url_moov(url: str) -> bytes | None:
    """The same walk over HTTP range requests (a presigned URL): a few small reads, not the file."""
    def read(pos: int, n: int) -> bytes:
        req = urllib.request.Request(url, headers={"Range": f"bytes={pos}-{pos + n - 1}"})
        with urllib.request.urlopen(req, timeout=HTTP_TIMEOUT_SECONDS) as r:  # noqa: S310 - our store's URL
            if r.status != 206:
                raise ValueError("the server ignored the range request")
            return r.read(n)

    req = urllib.request.Request(url, headers={"Range": "bytes=0-0"})
    with urllib.request.urlopen(req, timeout=HTTP_TIMEOUT_SECONDS) as r:  # noqa: S310
        total = r.headers.get("Content-Range", "").rpartition("/")[2]
    if not total.isdigit():
        return None
    return _find_moov(read, int(total))


def _u32(buf: bytes, start: int, count: int) -> np.ndarray:
    return np.frombuffer(buf, dtype=">u4", count=count, offset=start).astype(np.int64)


def _table(buf: bytes, a: int, signed: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(counts, values) of an stts/ctts run-length table."""
    n = struct.unpack_from(">I", buf, a + 4)[0]
    raw = np.frombuffer(buf, dtype=">i4" if signed else ">u4", count=2 * n, offset=a + 8).astype(np.int64)
    return raw[0::2], raw[1::2]


def _video_track(moov: bytes) -> dict[bytes, tuple[int, int]] | None:
    """The boxes (type -> payload span) of the first video track's sample table."""
    for kind, a, b in _boxes(moov, 8, len(moov)):
        if kind != b"trak":
            continue
        found: dict[bytes, tuple[int, int]] = {}

        def walk(s: int, e: int) -> None:
            for k, x, y in _boxes(moov, s, e):
                found.setdefault(k, (x, y))
                if k in _CONTAINERS:
                    walk(x, y)

        walk(a, b)
        hdlr = found.get(b"hdlr")
        if hdlr and moov[hdlr[0] + 8:hdlr[0] + 12] == b"vide":
            return found
    return None


def read_index(source: str) -> TrackIndex | None:
    """The first video track's samples (a path or an http(s) URL), or None when the file
    is not a plain MP4/MOV or cannot be read this way."""
    try:
        moov = _url_moov(source) if source.startswith(("http://", "https://")) else _file_moov(source)
    except (OSError, ValueError, urllib.error.URLError):
        return None
    if moov is None:
        return None
    try:
        return _parse(moov)
    except (struct.error, ValueError, IndexError):
        return None  # a damaged table: let the demuxer decide


def _parse(moov: bytes) -> TrackIndex | None:
    t = _video_track(moov)
    if t is None or b"stsz" not in t or b"stts" not in t or b"mdhd" not in t:
        return None
    md = t[b"mdhd"][0]
    timescale = struct.unpack_from(">I", moov, md + (20 if moov[md] == 1 else 12))[0]
    sz = t[b"stsz"][0]
    uniform, count = struct.unpack_from(">II", moov, sz + 4)
    sizes = np.full(count, uniform, np.int64) if uniform else _u32(moov, sz + 12, count)
    if count == 0 or not timescale:
        return None
    counts, deltas = _table(moov, t[b"stts"][0])
    dts = np.concatenate([[0], np.cumsum(np.repeat(deltas, counts))])[:count]
    if b"ctts" in t:
        c_counts, offsets = _table(moov, t[b"ctts"][0], signed=True)
        comp = np.repeat(offsets, c_counts)[:count]
        dts = dts + np.pad(comp, (0, count - len(comp)))
    keys = np.zeros(count, bool)
    if b"stss" in t:
        st = t[b"stss"][0]
        n = struct.unpack_from(">I", moov, st + 4)[0]
        keys[_u32(moov, st + 8, n) - 1] = True  # sample numbers are 1-based
    else:
        keys[:] = True  # no sync table: every sample is a sync sample
    if len(dts) != count:
        return None
    return TrackIndex(dts / timescale, keys, sizes)
