"""Sidecars: a small text/JSON file a device or officer leaves beside a recording (e.g. a
case number).  Read once at offload, kept with the recording, used by case linking."""
from __future__ import annotations

import json
import os
import stat

from ingest.profiles import Profile
from ingest.volume import Entry

MAX_BYTES = 64 * 1024


def find_sidecar(profile: Profile, media: Entry, entries_by_rel: dict[str, Entry]) -> Entry | None:
    stem = media.rel.rsplit(".", 1)[0]
    for ext in profile.media.sidecar_extensions:
        for cand in (f"{stem}.{ext}", f"{stem}.{ext.upper()}", f"{media.rel}.{ext}"):
            e = entries_by_rel.get(cand)
            if e is not None and e.kind == "file" and not profile.is_media(e.rel):
                return e
    return None


def read_sidecar(e: Entry) -> dict | None:
    """Never follows a link, never reads more than 64 KiB; content kept as text or parsed JSON."""
    try:
        fd = os.open(e.abspath, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_BYTES:
            return None
        raw = os.read(fd, MAX_BYTES)
    finally:
        os.close(fd)
    for enc in ("utf-8-sig", "gb18030"):
        try:
            text = raw.decode(enc)
            break
        except UnicodeDecodeError:
            continue
    else:
        return None
    content: object = text
    if e.rel.lower().endswith(".json"):
        try:
            parsed = json.loads(text)
            json.dumps(parsed, ensure_ascii=False).encode("utf-8")  # lone surrogates: keep the text
            content = parsed
        except (ValueError, RecursionError, UnicodeError):
            pass  # not JSON we can keep as structure (malformed, absurdly nested): kept as text
    return {"file": e.rel, "content": content}
