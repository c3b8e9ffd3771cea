"""The custody log: an append-only, hash-chained record of every action on evidence.

Each event's hash covers its fields and the previous event's hash, so editing or
deleting any event breaks every hash after it.  Appends are serialised by locking
the single chain-head row (SELECT ... FOR UPDATE on PostgreSQL; SQLite transactions
are already exclusive writers here), so several workers and stations can append.
"""
from __future__ import annotations

import getpass
import hashlib
import json
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from catalog.models import ChainHead, CustodyEvent, utcnow

GENESIS = "0" * 64

# Where the current request came from (set by the web app per request): every event written
# while serving it - by the web code or by the linking/retention code it calls - says from where.
request_origin: ContextVar[str | None] = ContextVar("custody_request_origin", default=None)

def default_actor() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry (containers): still name something
        return "unknown"


def canonical(fields: dict[str, Any]) -> bytes:
    return json.dumps(fields, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str).encode()


def event_fields(ev: CustodyEvent) -> dict[str, Any]:
    return {
        "seq": ev.seq,
        "at": ev.at.isoformat(timespec="microseconds"),
        "actor": ev.actor,
        "action": ev.action,
        "outcome": ev.outcome,
        "media_id": ev.media_id,
        "session_id": ev.session_id,
        "subject": ev.subject,
        "remote_addr": ev.remote_addr,
        "detail": ev.detail or {},
    }


def compute_hash(prev_hash: str, fields: dict[str, Any]) -> str:
    return hashlib.sha256(prev_hash.encode() + canonical(fields)).hexdigest()


def record(
    session: Session,
    action: str,
    *,
    actor: str | None = None,
    outcome: str = "ok",
    media_id: int | None = None,
    session_id: int | None = None,
    subject: str | None = None,
    remote_addr: str | None = None,
    detail: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> CustodyEvent:
    """Append one event in the caller's transaction (it lands with the change it records)."""
    head = session.execute(select(ChainHead).where(ChainHead.id == 1).with_for_update()).scalar_one()
    ev = CustodyEvent(
        seq=head.seq + 1,
        at=(at or utcnow()).astimezone(timezone.utc),
        actor=actor or default_actor(),
        action=action,
        outcome=outcome,
        media_id=media_id,
        session_id=session_id,
        subject=subject,
        remote_addr=remote_addr if remote_addr is not None else request_origin.get(),
        detail=json.loads(canonical(detail or {})),  # stored exactly as hashed
        prev_hash=head.hash,
    )
    ev.hash = compute_hash(head.hash, event_fields(ev))
    session.add(ev)
    head.seq = ev.seq
    head.hash = ev.hash
    session.flush()
    return ev


@dataclass
class ChainReport:
    events: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_chain(session: Session, batch: int = 5000) -> ChainReport:
    """Recompute every hash in order; name each break (edit, deletion, reorder, truncation)."""
    rep = ChainReport()
    prev_hash, expected_seq = GENESIS, 1
    last_id = 0
    while True:
        rows = session.execute(
            select(CustodyEvent).where(CustodyEvent.seq >= expected_seq).order_by(CustodyEvent.seq).limit(batch)
        ).scalars().all()
        if not rows:
            break
        for ev in rows:
            if ev.seq != expected_seq:
                rep.problems.append(f"custody log: events {expected_seq}..{ev.seq - 1} are missing (deleted)")
            if ev.prev_hash != prev_hash:
                rep.problems.append(f"custody log: event {ev.seq} does not follow the previous event's hash")
            if compute_hash(ev.prev_hash, event_fields(ev)) != ev.hash:
                rep.problems.append(f"custody log: event {ev.seq} ({ev.action}) was altered after it was written")
            prev_hash, expected_seq = ev.hash, ev.seq + 1
            rep.events += 1
        last_id = rows[-1].seq
        session.expunge_all()
    head = session.execute(select(ChainHead).where(ChainHead.id == 1)).scalar_one_or_none()
    if head is None:
        rep.problems.append("custody log: chain head row is missing")
    elif head.seq != last_id or (rep.events and head.hash != prev_hash):
        rep.problems.append(
            f"custody log: head says {head.seq} events but the log ends at {last_id} (events removed from the end)"
        )
    return rep
