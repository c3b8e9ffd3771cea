"""Shared by the custody-log anchor tests: a small real catalog and what a database administrator can do to it."""
from __future__ import annotations

import hashlib
from typing import Any

from sqlalchemy import delete, select, text, update

from catalog import custody_log
from catalog.models import ChainHead, CustodyEvent, Media
from storage.base import media_key


def add_recording(app: Any, data: bytes, path: str, actor: str = "station:test") -> int:
    """A stored recording as the pipeline leaves it: object in the store, media row, `stored` event."""
    sha = hashlib.sha256(data).hexdigest()
    key = media_key(sha)
    app.store.put_bytes(key, data)
    with app.catalog.session() as s:
        m = Media(sha256=sha, size=len(data), kind="video", storage_key=key, original_path=path,
                  original_name=path.rsplit("/", 1)[-1], officer_badge="310001", unit_code="310115000000")
        s.add(m)
        s.flush()
        custody_log.record(s, "stored", actor=actor, media_id=m.id, subject=f"sha256:{sha}",
                           detail={"key": key, "size": len(data), "device_path": path})
        return m.id


def populate(app: Any, events: int = 60) -> list[int]:
    """Three recordings and `events` events in all, some by the account `alice`."""
    ids = [add_recording(app, f"clip {i}".encode() * 100, f"DCIM/2026/CLIP{i:04d}.MP4") for i in range(3)]
    with app.catalog.session() as s:
        n = s.execute(select(ChainHead.seq)).scalar_one()
        for i in range(events - n):
            custody_log.record(s, "viewed", actor="alice" if i % 3 == 0 else "bob", media_id=ids[i % 3],
                               subject=f"media:{ids[i % 3]}", detail={"i": i})
    return ids


def drop_guards(app: Any) -> None:
    """What a database administrator can do: drop the append-only triggers."""
    with app.catalog.engine.begin() as c:
        if app.catalog.dialect == "sqlite":
            c.execute(text("DROP TRIGGER IF EXISTS custody_events_no_update"))
            c.execute(text("DROP TRIGGER IF EXISTS custody_events_no_delete"))
        else:
            c.execute(text("DROP TRIGGER IF EXISTS custody_events_append_only ON custody_events"))


def rehash_from(app: Any, first_seq: int = 1) -> None:
    """Recompute every hash from `first_seq` on and move the head to the end (as an attacker would)."""
    with app.catalog.sessionmaker() as s:
        prev = custody_log.GENESIS
        if first_seq > 1:
            prev = s.execute(select(CustodyEvent.hash).where(CustodyEvent.seq == first_seq - 1)).scalar_one()
        evs = s.execute(select(CustodyEvent).where(CustodyEvent.seq >= first_seq)
                        .order_by(CustodyEvent.seq)).scalars().all()
        for ev in evs:
            ev.prev_hash = prev
            ev.hash = custody_log.compute_hash(prev, custody_log.event_fields(ev))
            prev = ev.hash
            s.flush()
        last = s.execute(select(CustodyEvent.seq).order_by(CustodyEvent.seq.desc()).limit(1)).scalar() or 0
        s.execute(update(ChainHead).where(ChainHead.id == 1).values(seq=last, hash=prev))
        s.commit()


def cut_tail(app: Any, n: int) -> None:
    with app.catalog.sessionmaker() as s:
        last = s.execute(select(ChainHead.seq)).scalar_one()
        s.execute(delete(CustodyEvent).where(CustodyEvent.seq > last - n))
        s.commit()


def renumber(app: Any) -> None:
    """Close the gaps left by deleted events (seq 1..n again), then re-hash everything."""
    with app.catalog.sessionmaker() as s:
        evs = s.execute(select(CustodyEvent).order_by(CustodyEvent.seq)).scalars().all()
        for i, ev in enumerate(evs, 1):
            ev.seq = -i  # two steps: seq is UNIQUE
        s.flush()
        for ev in evs:
            ev.seq = -ev.seq
        s.commit()
    rehash_from(app, 1)


def problems(rep: Any) -> str:
    return "\n".join(p.message for p in rep.problems)
