"""Walk a device volume without ever following a link or opening a special file.

Entries are classified from `lstat` only; nothing is read here.  Names that are not
valid UTF-8 are kept as bytes for opening and shown with backslash escapes.
"""
from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

MAX_DEPTH = 24
MAX_ENTRIES = 200_000


@dataclass(frozen=True)
class Entry:
    rel: str  # display form, '/'-separated, relative to the volume (data, never a path to build on)
    abspath: bytes  # the real path for opening (bytes: survives any encoding)
    kind: str  # file|symlink|special|dir
    size: int
    mtime_ns: int
    inode: int
    dev: int


def display_name(raw: bytes) -> str:
    return raw.decode("utf-8", "backslashreplace")


def scan(volume: Path) -> list[Entry]:
    """All entries below `volume` (files, symlinks, special files).  Directories are walked
    only when they are real directories on the same file system (a mount point or link
    inside a volume could lead anywhere)."""
    root = os.fsencode(os.path.abspath(volume))
    root_st = os.lstat(root)
    out: list[Entry] = []
    stack: list[tuple[bytes, bytes, int]] = [(root, b"", 0)]
    while stack:
        path, rel, depth = stack.pop()
        try:
            it = os.scandir(path)
        except OSError:
            continue
        with it:
            for de in it:
                r = rel + b"/" + de.name if rel else de.name
                try:
                    st = de.stat(follow_symlinks=False)
                except OSError:
                    continue
                mode = st.st_mode
                if stat.S_ISLNK(mode):
                    kind = "symlink"
                elif stat.S_ISDIR(mode):
                    if depth < MAX_DEPTH and st.st_dev == root_st.st_dev:
                        stack.append((de.path, r, depth + 1))
                    continue
                elif stat.S_ISREG(mode):
                    kind = "file"
                else:
                    kind = "special"
                out.append(Entry(display_name(r), de.path, kind, st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev))
                if len(out) >= MAX_ENTRIES:
                    return sorted(out, key=lambda e: e.rel)
    return sorted(out, key=lambda e: e.rel)


def signature(volume: Path) -> tuple[int, int, int]:
    """(entries, total bytes, newest mtime): unchanged for a while means the volume settled."""
    n = total = newest = 0
    for e in scan(volume):
        n += 1
        total += e.size
        newest = max(newest, e.mtime_ns)
    return n, total, newest


def inside(volume: Path, candidate: bytes) -> bool:
    """True when `candidate` really resolves inside the volume (no link or '..' escape)."""
    root = os.path.realpath(os.fsencode(os.path.abspath(volume)))
    real = os.path.realpath(candidate)
    return real == root or real.startswith(root.rstrip(b"/") + b"/")
