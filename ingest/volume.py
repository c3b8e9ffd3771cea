"""Walk a device volume without ever following a link or opening a special file.

Entries are classified from `lstat` only; nothing is read here.  Names that are not
valid UTF-8 are kept as bytes for opening and shown with backslash escapes.
"""
from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

MAX_DEPTH = 24
MAX_ENTRIES = 200_000


@dataclass(frozen=True)
class Entry:
    rel: str  # display form, '/'-separated, relative to the volume (data, never a path to build on)
    abspath: bytes  # the real path for opening (bytes: survives any encoding)
    kind: str  # file|symlink|special|mount|unscanned
    size: int
    mtime_ns: int
    inode: int
    dev: int
    note: str | None = None  # why a folder was not listed (kind "unscanned")


# macOS and Windows write these beside real files when a device is browsed: never recordings.
OS_LITTER_PREFIXES = ("._",)
OS_LITTER_NAMES = frozenset({".DS_Store", "Thumbs.db", "desktop.ini"})
APPLEDOUBLE_MAGIC = b"\x00\x05\x16\x07"


def os_litter(rel: str) -> bool:
    name = rel.rsplit("/", 1)[-1]
    return name.startswith(OS_LITTER_PREFIXES) or name in OS_LITTER_NAMES


def display_name(raw: bytes) -> str:
    """One text per name and never two names for one text: a literal backslash is doubled and
    a byte that is not UTF-8 becomes \\xNN, so `\xff` typed in a name and a raw 0xFF differ."""
    return raw.replace(b"\\", b"\\\\").decode("utf-8", "backslashreplace")


def shown_path(path: Path) -> str:
    """A volume's path as text for the catalog and output: a label that is not UTF-8 (a GBK
    volume name) is escaped, never carried as surrogates that no database or terminal takes."""
    return display_name(os.fsencode(path))


def scan(volume: Path) -> list[Entry]:
    """All entries below `volume` (files, symlinks, special files).  Directories are walked
    only when they are real directories on the same file system (a mount point or link
    inside a volume could lead anywhere).  Nothing is left out silently: a folder that cannot
    be read, one nested too deep and a volume too large to list come back as "unscanned"
    entries with the reason, and a mount point as a "mount" entry."""
    root = os.fsencode(os.path.abspath(volume))
    root_st = os.lstat(root)
    mounts = mount_points_below(root)
    out: list[Entry] = []
    stack: list[tuple[bytes, bytes, int]] = [(root, b"", 0)]
    while stack:
        path, rel, depth = stack.pop()
        try:
            it = os.scandir(path)
        except OSError as e:
            out.append(_unscanned(rel, path, f"folder could not be read ({e.strerror or e}); not offloaded"))
            continue
        with it:
            for de in it:
                r = rel + b"/" + de.name if rel else de.name
                try:
                    st = de.stat(follow_symlinks=False)
                except OSError as e:
                    out.append(_unscanned(r, de.path, f"could not be examined ({e.strerror or e}); not offloaded"))
                    continue
                mode = st.st_mode
                if stat.S_ISLNK(mode):
                    kind = "symlink"
                elif stat.S_ISDIR(mode):
                    if st.st_dev != root_st.st_dev or de.path in mounts:  # a bind mount keeps the device number
                        out.append(_unscanned(r, de.path, "another file system is mounted here: never crossed; "
                                                          "not offloaded"))
                        continue
                    elif depth + 1 > MAX_DEPTH:
                        out.append(_unscanned(r, de.path, f"nested deeper than {MAX_DEPTH} folders; not offloaded"))
                        continue
                    else:
                        stack.append((de.path, r, depth + 1))
                        continue
                elif stat.S_ISREG(mode):
                    kind = "file"
                else:
                    kind = "special"
                out.append(Entry(display_name(r), de.path, kind, st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev))
                if len(out) >= MAX_ENTRIES:
                    out.append(_unscanned(b"", root, f"the volume holds more than {MAX_ENTRIES} entries; "
                                          "listing stopped, the rest is not offloaded"))
                    return sorted(out, key=lambda e: e.rel)
    return sorted(out, key=lambda e: e.rel)


def mount_points_below(root: bytes) -> frozenset[bytes]:
    """Mount points strictly inside `root`, from the kernel's table (bind mounts included, which
    a device-number comparison cannot see).  Empty where /proc is not available."""
    prefix = os.path.realpath(root).rstrip(b"/") + b"/"
    found = set()
    try:
        with open("/proc/self/mountinfo", "rb") as f:
            for line in f:
                fields = line.split(b" ")
                if len(fields) > 4:
                    point = _unoctal(fields[4])
                    if point.startswith(prefix):
                        found.add(point)
    except OSError:
        return frozenset()
    # scandir gives paths under the root as given; map them back if the root is reached via a link
    given = os.path.abspath(root).rstrip(b"/") + b"/"
    return frozenset(found | {given + p[len(prefix):] for p in found})


def _unoctal(field: bytes) -> bytes:
    """mountinfo escapes space, tab, newline and backslash as \\NNN (octal)."""
    return re.sub(rb"\\([0-7]{3})", lambda m: bytes([int(m.group(1), 8)]), field)


def is_appledouble(e: Entry) -> bool:
    """A macOS `._` metadata file (magic 00 05 16 07), written when someone browsed the card.
    A real recording that merely has such a name is not one (and is offloaded)."""
    if not os_litter(e.rel) or e.kind != "file":
        return False
    try:
        fd = os.open(e.abspath, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        return os.read(fd, 4) == APPLEDOUBLE_MAGIC
    except OSError:
        return False
    finally:
        os.close(fd)


def _unscanned(rel: bytes, path: bytes, why: str) -> Entry:
    return Entry(display_name(rel) or ".", path, "unscanned", 0, 0, 0, 0, why)


def signature(volume: Path) -> tuple[int, int, int]:
    """(entries, total bytes, newest mtime): unchanged for a while means the volume settled."""
    n = total = newest = 0
    for e in scan(volume):
        if e.kind == "unscanned":
            continue
        n += 1
        total += e.size
        newest = max(newest, e.mtime_ns)
    return n, total, newest


def inside(volume: Path, candidate: bytes) -> bool:
    """True when `candidate` really resolves inside the volume (no link or '..' escape)."""
    root = os.path.realpath(os.fsencode(os.path.abspath(volume)))
    real = os.path.realpath(candidate)
    return real == root or real.startswith(root.rstrip(b"/") + b"/")
