"""Streaming SHA-256 of stored bytes (memory flat whatever the size)."""
from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

CHUNK = 4 * 1024 * 1024


def sha256_file(path: Path, chunk: int = CHUNK) -> str:
    h = hashlib.sha256()
    buf = bytearray(chunk)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buf):
            h.update(view[:n])  # hashlib releases the GIL on large buffers
    return h.hexdigest()


def sha256_stream(chunks: Iterable[bytes]) -> tuple[str, int]:
    h = hashlib.sha256()
    total = 0
    for c in chunks:
        h.update(c)
        total += len(c)
    return h.hexdigest(), total
