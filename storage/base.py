"""What every object store offers the pipeline.

Keys are content-addressed and built only from hex digests and fixed words, never
from device file names (a hostile or Chinese name is data, never a path).
"""
from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,120}$")


def media_key(sha256: str) -> str:
    if not _HEX64.match(sha256):
        raise ValueError(f"not a SHA-256 hex digest: {sha256!r}")
    return f"media/sha256/{sha256[:2]}/{sha256[2:4]}/{sha256}"


def key_sha256(key: str) -> str | None:
    """The SHA-256 a content-addressed media key names, or None for any other key."""
    parts = key.split("/")
    if len(parts) == 5 and parts[:2] == ["media", "sha256"] and len(parts[4]) == 64 \
            and parts[2] == parts[4][:2] and parts[3] == parts[4][2:4]:
        return parts[4]
    return None


def derived_key(sha256: str, name: str) -> str:
    """Key of a derivative (keyframe, contact sheet) of the recording `sha256`."""
    if not _HEX64.match(sha256) or not _SAFE_NAME.match(name) or ".." in name:
        raise ValueError(f"bad derivative key parts: {sha256!r} {name!r}")
    return f"derived/{sha256[:2]}/{sha256}/{name}"


@dataclass
class StoredObject:
    key: str
    size: int
    sha256: str
    checksum: str  # what the store confirmed (S3 ChecksumSHA256, local: re-hash hex)
    version_id: str | None = None
    existed: bool = False  # the same bytes were already there (idempotent resume / duplicate)


@dataclass
class ObjectInfo:
    key: str
    size: int
    sha256: str | None  # the evidence hash kept in the object's metadata
    checksum: str | None = None
    version_id: str | None = None
    retain_until: datetime | None = None
    lock_mode: str | None = None
    legal_hold: bool = False
    metadata: dict[str, str] = field(default_factory=dict)


class ObjectStore(Protocol):
    url: str

    def put_file(self, key: str, path: Path, sha256: str, size: int, *,
                 metadata: dict[str, str] | None = None, content_type: str | None = None,
                 proven: bool = False) -> StoredObject:
        """Store a file and have the store confirm the checksum of what it received.
        `proven`: `path` is a durable (fsynced), never-rewritten copy whose SHA-256 the caller
        computed while writing it (the spool's content-addressed copy); the local store then
        takes that file itself instead of copying it (issue 14), other stores ignore it."""

    def put_bytes(self, key: str, data: bytes, *, content_type: str | None = None,
                  metadata: dict[str, str] | None = None) -> StoredObject: ...

    def head(self, key: str) -> ObjectInfo | None: ...

    def confirm(self, key: str, sha256: str, size: int) -> ObjectInfo:
        """Cheap check that the store holds `size` bytes whose checksum matches `sha256`."""

    def iter_bytes(self, key: str, start: int = 0, end: int | None = None,
                   chunk: int = 1024 * 1024) -> Iterator[bytes]:
        """Stream [start, end] inclusive (HTTP range semantics)."""

    def local_path(self, key: str) -> Path | None:
        """A readable path when the store is a local directory, else None."""

    def presigned_url(self, key: str, seconds: int = 300) -> str | None: ...

    def delete(self, key: str) -> None:
        """Only the retention sweeper calls this; locked objects must refuse."""

    def set_retention(self, key: str, until: datetime, mode: str) -> None: ...

    def set_legal_hold(self, key: str, on: bool) -> None: ...

    def ping(self) -> None:
        """Raise StorageUnavailable when the store does not answer."""

    def list_keys(self, prefix: str) -> Iterator[str]:
        """Every key under `prefix`, in key order (the custody log's checkpoints, object records)."""
