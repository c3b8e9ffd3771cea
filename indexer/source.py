"""Where the indexer reads a recording's bytes from, cheapest first.

1. The station spool copy (`<spool_dir>/objects/<sha256>`), still there soon after docking.
2. The object store's own file (local-directory store).
3. A short-lived presigned URL (ffprobe and the decoder read http with range requests,
   so only the parts needed travel).
4. Otherwise the object is streamed into a temporary file, removed afterwards.
"""
from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from core.errors import StorageUnavailable
from core.settings import Settings
from ingest.spool import Spool
from storage.base import ObjectStore

_HEX64 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class Source:
    location: str  # a path or an http(s) URL
    via: str  # spool|store|presigned|tempfile


def spool_copy(settings: Settings, sha256: str, size: int) -> Path | None:
    if not _HEX64.match(sha256):
        return None
    p = Spool.of(settings).path(sha256)
    try:
        # Same size as the evidence: a half-written or foreign file is not used.
        return p if p.is_file() and p.stat().st_size == size else None
    except OSError:
        return None


@contextmanager
def open_source(settings: Settings, store: ObjectStore, sha256: str, size: int, storage_key: str,
                *, allow_url: bool = True) -> Iterator[Source]:
    p = spool_copy(settings, sha256, size)
    if p is not None:
        yield Source(str(p), "spool")
        return
    local = store.local_path(storage_key)
    if local is not None:
        yield Source(str(local), "store")
        return
    # An empty object has no byte a reader could ask a range of (ffmpeg's http reader asks for
    # "bytes=0-", which S3 refuses for zero bytes): hand the prober an empty file instead.
    if allow_url and size > 0:
        url = store.presigned_url(storage_key, settings.storage.presign_seconds)
        if url:
            yield Source(url, "presigned")
            return
    with _temp_copy(store, storage_key) as tmp:
        yield Source(str(tmp), "tempfile")


@contextmanager
def _temp_copy(store: ObjectStore, key: str) -> Iterator[Path]:
    fd, name = tempfile.mkstemp(prefix="custody-index-")
    try:
        with os.fdopen(fd, "wb") as f:
            try:
                for chunk in store.iter_bytes(key):
                    f.write(chunk)
            except StorageUnavailable:
                raise
            except Exception as e:  # noqa: BLE001 - boto errors differ by store; the reason is kept
                raise StorageUnavailable(f"reading {key} from the store failed: {e}") from e
        yield Path(name)
    finally:
        try:
            os.unlink(name)
        except FileNotFoundError:
            pass
