"""HTTP range responses over any object store, in flat memory.

The bytes come from `store.iter_bytes(key, start, end)` chunk by chunk (a local file
seek, or an S3 ranged GET proxied through), so seeking in a multi-gigabyte recording
costs one small request and the server never holds more than a chunk.
"""
from __future__ import annotations

import itertools
import mimetypes
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath
from urllib.parse import quote

from starlette.responses import Response, StreamingResponse

from core.errors import StorageIntegrityError
from storage.base import ObjectStore

CHUNK = 256 * 1024
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")

KIND_TYPES = {"video": "video/mp4", "audio": "audio/mpeg", "photo": "image/jpeg"}


class RangeNotSatisfiable(Exception):
    pass


@dataclass(frozen=True)
class ByteRange:
    start: int
    end: int  # inclusive

    @property
    def length(self) -> int:
        return self.end - self.start + 1


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """One `bytes=a-b` / `bytes=a-` / `bytes=-n` range; None means the whole object.

    Several ranges in one header (multipart/byteranges) are answered with the whole
    object, which RFC 9110 allows; players never ask for them.
    """
    if not header:
        return None
    m = _RANGE.match(header.strip().replace(" ", ""))
    if not m:
        return None  # unknown unit or a multi-range: ignore the header
    a, b = m.groups()
    if a == "" and b == "":
        return None
    if a == "":  # suffix: the last n bytes
        n = int(b)
        if n == 0 or size == 0:
            raise RangeNotSatisfiable()
        return ByteRange(max(size - n, 0), size - 1)
    start = int(a)
    end = size - 1 if b == "" else min(int(b), size - 1)
    if start >= size or end < start:
        raise RangeNotSatisfiable()
    return ByteRange(start, end)


def content_type(kind: str, name: str) -> str:
    guessed, _ = mimetypes.guess_type(PurePosixPath(name).name)
    if guessed and guessed.split("/")[0] in ("video", "audio", "image"):
        return guessed
    return KIND_TYPES.get(kind, "application/octet-stream")


def primed(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """Open the object before the status line goes out: a store that does not answer
    becomes an error page (503), not a 206 that stops after its headers."""
    it = iter(chunks)
    try:
        first = next(it, b"")
    except FileNotFoundError as e:  # local store: the catalog names an object the disk lacks
        raise StorageIntegrityError(f"the stored original is missing from the store ({e.filename})") from e
    return itertools.chain([first], it)


def ranged_response(store: ObjectStore, key: str, size: int, rng: ByteRange | None, media_type: str,
                    *, download_name: str | None = None) -> Response:
    headers = {"Accept-Ranges": "bytes", "Cache-Control": "private, no-store"}
    if download_name:
        headers["Content-Disposition"] = f"attachment; filename*=UTF-8''{quote(download_name)}"
    if size == 0:
        return Response(b"", media_type=media_type, headers=headers)
    if rng is None:
        headers["Content-Length"] = str(size)
        return StreamingResponse(primed(store.iter_bytes(key, 0, size - 1, chunk=CHUNK)), media_type=media_type,
                                 headers=headers)
    headers["Content-Range"] = f"bytes {rng.start}-{rng.end}/{size}"
    headers["Content-Length"] = str(rng.length)
    return StreamingResponse(primed(store.iter_bytes(key, rng.start, rng.end, chunk=CHUNK)), status_code=206,
                             media_type=media_type, headers=headers)


def not_satisfiable(size: int) -> Response:
    return Response(status_code=416, headers={"Content-Range": f"bytes */{size}", "Accept-Ranges": "bytes"})
