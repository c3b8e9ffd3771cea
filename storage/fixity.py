"""Streaming SHA-256 of stored bytes (memory flat whatever the size)."""
from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

CHUNK = 4 * 1024 * 1024


def sha256_file(path: Path, chunk: int = CHUNK) -> str:
    with open(path, "rb", buffering=0) as f:
        return sha256_fd(f.fileno(), chunk)


def sha256_fd(fd: int, chunk: int = CHUNK) -> str:
    """From the descriptor's current position to its end (callers that must open carefully -
    no links, same inode - open first and hash here)."""
    h = hashlib.sha256()
    buf = bytearray(chunk)
    view = memoryview(buf)
    while n := os.readv(fd, [buf]):
        h.update(view[:n])  # hashlib releases the GIL on large buffers
    return h.hexdigest()


def sha256_stream(chunks: Iterable[bytes]) -> tuple[str, int]:
    h = hashlib.sha256()
    total = 0
    for c in chunks:
        h.update(c)
        total += len(c)
    return h.hexdigest(), total
