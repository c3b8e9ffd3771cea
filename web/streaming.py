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

from core.errors import StorageIntegrityError, StorageUnavailable
from storage.base import ObjectStore

CHUNK = 256 * 1024
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_MAX_DIGITS = 19  # no object is larger than 10**19 bytes; longer numbers are not satisfiable

KIND_TYPES = {"video": "video/mp4", "audio": "audio/mpeg", "photo": "image/jpeg"}


class RangeNotSatisfiable(Exception):
    pass


class ObjectMissing(StorageIntegrityError):
    """The catalog names an object the store lacks (the answer names no server path)."""


class StoreFailed(StorageUnavailable):
    """The store did not answer (the answer names no endpoint or key)."""


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
    if len(a) > _MAX_DIGITS or len(b) > _MAX_DIGITS:
        if a and len(a) > _MAX_DIGITS:
            raise RangeNotSatisfiable()  # starts beyond any object
        b = str(size) if a == "" else ""  # a suffix or an end beyond the object: up to its end
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
    becomes an error page (503), not a 206 that stops after its headers.  Errors name no
    server path, endpoint or key (they are in the custody log and the server log)."""
    it = iter(chunks)
    try:
        first = next(it, b"")
    except FileNotFoundError as e:  # local store: the catalog names an object the disk lacks
        raise ObjectMissing("the stored object is missing from the store") from e
    except StorageUnavailable as e:
        if "NoSuchKey" in str(e) or "404" in str(e):
            raise ObjectMissing("the stored object is missing from the store") from e
        raise StoreFailed("the object store does not answer") from e
    return itertools.chain([first], it)


def open_range(store: ObjectStore, key: str, size: int | None, rng: ByteRange | None) -> Iterator[bytes]:
    """The object's bytes (a range of them), already opened: raises ObjectMissing/StoreFailed now."""
    if size == 0:
        return iter([b""])
    if rng is None:
        return primed(store.iter_bytes(key, 0, None if size is None else size - 1, chunk=CHUNK))
    return primed(store.iter_bytes(key, rng.start, rng.end, chunk=CHUNK))


def ranged_response(store: ObjectStore, key: str, size: int, rng: ByteRange | None, media_type: str,
                    *, download_name: str | None = None, chunks: Iterator[bytes] | None = None) -> Response:
    headers = {"Accept-Ranges": "bytes", "Cache-Control": "private, no-store"}
    if download_name:
        headers["Content-Disposition"] = f"attachment; filename*=UTF-8''{quote(download_name)}"
    if size == 0:
        return Response(b"", media_type=media_type, headers=headers)
    if rng is None:
        headers["Content-Length"] = str(size)
        return StreamingResponse(chunks if chunks is not None else primed(store.iter_bytes(key, 0, size - 1,
                                                                                               chunk=CHUNK)),
                                 media_type=media_type, headers=headers)
    headers["Content-Range"] = f"bytes {rng.start}-{rng.end}/{size}"
    headers["Content-Length"] = str(rng.length)
    body = chunks if chunks is not None else primed(store.iter_bytes(key, rng.start, rng.end, chunk=CHUNK))
    return StreamingResponse(body, status_code=206, media_type=media_type, headers=headers)


def not_satisfiable(size: int) -> Response:
    return Response(status_code=416, headers={"Content-Range": f"bytes */{size}", "Accept-Ranges": "bytes"})
