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
import logging
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from catalog.models import ChainHead, CustodyEvent, CustodySignature, utcnow

GENESIS = "0" * 64
log = logging.getLogger("custody.log")

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
    return _with_station({
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
    }, ev.station)


def _with_station(fields: dict[str, Any], station: str | None) -> dict[str, Any]:
    """The writing station is hashed when the event names one (issue 16); events written
    before stations were recorded hash exactly as they did."""
    if station is not None:
        fields["station"] = station
    return fields


def compute_hash(prev_hash: str, fields: dict[str, Any]) -> str:
    return hashlib.sha256(prev_hash.encode() + canonical(fields)).hexdigest()



def signed_message(seq: int, event_hash: str) -> bytes:
    """What a station signs for one event: its number and its hash (which covers the chain before it)."""
    return f"custody-event/1:{seq}:{event_hash}".encode()


def _append(session: Session, head: ChainHead, seq: int, action: str, *, actor: str | None, outcome: str,
            media_id: int | None, session_id: int | None, subject: str | None, remote_addr: str | None,
            detail: dict[str, Any] | None, at: datetime | None) -> CustodyEvent:
    ev = CustodyEvent(
        seq=seq,
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
        station=session.info.get("station"),  # the catalog's station (issue 16)
    )
    ev.hash = compute_hash(head.hash, event_fields(ev))
    session.add(ev)
    signer = session.info.get("signer")
    if signer is not None:
        try:
            session.add(CustodySignature(seq=ev.seq, key_id=signer.key_id, sig=signer.sign(signed_message(ev.seq, ev.hash))))
        except Exception as e:  # noqa: BLE001 - an unreadable key must not stop evidence work; verify names the gap
            log.error("custody event %s written unsigned: the station key is unavailable: %s", ev.seq, e)
    head.seq = ev.seq
    head.hash = ev.hash
    session.flush()
    return ev


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
    """Append one event in the caller's transaction (it lands with the change it records).

    The locked chain head, not the seq UNIQUE constraint, decides the next number: rows
    someone inserted around this writer (beyond the head) are stepped over, and a
    `chain_break` event naming them is written first, so one forged row cannot stop every
    later write and the break stays on the record.
    """
    head = session.execute(select(ChainHead).where(ChainHead.id == 1).with_for_update()).scalar_one_or_none()
    top = session.execute(select(func.max(CustodyEvent.seq))).scalar()
    if head is None:  # someone deleted the head row: take it up again from the last event, on the record
        last = session.execute(select(CustodyEvent.seq, CustodyEvent.hash).order_by(CustodyEvent.seq.desc())
                               .limit(1)).first()
        head = ChainHead(id=1, seq=last.seq if last else 0, hash=last.hash if last else GENESIS)
        session.add(head)
        session.flush()
        log.error("custody log: the chain head row was missing; taken up again after event %s",
                  last.seq if last else 0)
        _append(session, head, (top if isinstance(top, int) else 0) + 1, "chain_break", actor="custody-writer",
                outcome="failed", media_id=None, session_id=None, subject="custody-log", remote_addr=None,
                detail={"head_seq": None, "foreign_seqs": [], "last_seq": last.seq if last else 0,
                        "reason": "the chain head row was missing"}, at=None)
    elif isinstance(top, int) and top > head.seq:
        foreign = session.execute(select(CustodyEvent.seq).where(CustodyEvent.seq > head.seq)
                                  .order_by(CustodyEvent.seq).limit(100)).scalars().all()
        log.error("custody log: rows %s lie beyond the chain head (seq %s): they were not written by the custody "
                  "writer; the chain continues at %s from the head", foreign, head.seq, top + 1)
        _append(session, head, top + 1, "chain_break", actor="custody-writer", outcome="failed",
                media_id=None, session_id=None, subject="custody-log", remote_addr=None,
                detail={"head_seq": head.seq, "head_hash": head.hash, "foreign_seqs": foreign,
                        "reason": "rows beyond the chain head, not written by the custody writer"}, at=None)
    return _append(session, head, head.seq + 1, action, actor=actor, outcome=outcome, media_id=media_id,
                   session_id=session_id, subject=subject, remote_addr=remote_addr, detail=detail, at=at)


ACK_ACTIONS = ("catalog_rebuilt", "catalog_restored")


@dataclass
class ChainReport:
    events: int = 0
    signatures_checked: int = 0
    problems: list[str] = field(default_factory=list)
    last_seq: int = 0
    last_hash: str = GENESIS
    # chain ids of logs this catalog knowingly replaced -> events of that chain kept here (0: none)
    replaced_chains: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems


class _Runs:
    """Collapses the same finding over consecutive events into one line ("events 5..900: ...")."""

    def __init__(self, out: list[str]) -> None:
        self.out = out
        self.cur: tuple[str, int, int] | None = None

    def add(self, what: str, seq: int) -> None:
        if self.cur and self.cur[0] == what and self.cur[2] == seq - 1:
            self.cur = (what, self.cur[1], seq)
            return
        self.flush()
        self.cur = (what, seq, seq)

    def flush(self) -> None:
        if self.cur:
            what, a, b = self.cur
            self.out.append(f"custody log: event {a}: {what}" if a == b else f"custody log: events {a}..{b}: {what}")
            self.cur = None


# Every column: rows carry the model's attribute names, so event_fields() reads them as it reads events.
_COLS = tuple(CustodyEvent.__table__.c)


def _read_batch(session: Session, after: int, batch: int) -> list[Any]:
    """Rows with seq > after, in seq order.  A row the database cannot hand back as an event
    (a forged value of the wrong type) becomes a stub that verify reports, never a crash."""
    q = select(*_COLS).where(CustodyEvent.seq > after).order_by(CustodyEvent.seq).limit(batch)
    try:
        return list(session.execute(q).all())
    except Exception:  # noqa: BLE001 - fall back to one row at a time to name the bad one
        session.rollback()
    keys = session.execute(select(CustodyEvent.id, CustodyEvent.seq).where(CustodyEvent.seq > after)
                           .order_by(CustodyEvent.seq).limit(batch)).all()
    rows: list[Any] = []
    for rid, seq in keys:
        try:
            rows.append(session.execute(select(*_COLS).where(CustodyEvent.id == rid)).one())
        except Exception as e:  # noqa: BLE001
            session.rollback()
            rows.append(("unreadable", rid, seq, str(e).splitlines()[0][:200]))
    return rows


def _fields(row: Any) -> dict[str, Any]:
    return event_fields(row)  # exactly what the writer hashed


def verify_chain(session: Session, batch: int = 5000, keyring: Any = None, signed_from: int = 1) -> ChainReport:
    """Recompute every hash in order and name each break: edits, deletions, reorders, rows
    that conflict with their neighbour, rows beyond the head, and (given a `keyring` of
    trusted station keys) events without a valid station signature from `signed_from` on.
    Never raises on what it finds in the rows."""
    rep = ChainReport()
    sig_runs = _Runs(rep.problems)
    prev_hash, prev_prev, expected_seq, last_id = GENESIS, None, 1, 0
    after = 0
    while True:
        rows = _read_batch(session, after, batch)
        if not rows:
            break
        sigs: dict[int, list[tuple[str, str]]] = {}
        if keyring is not None:
            seqs = [r[2] if r[0] == "unreadable" else r.seq for r in rows]
            ints = [x for x in seqs if isinstance(x, int)]
            if ints:
                for seq, kid, sig in session.execute(
                        select(CustodySignature.seq, CustodySignature.key_id, CustodySignature.sig)
                        .where(CustodySignature.seq >= min(ints), CustodySignature.seq <= max(ints))):
                    sigs.setdefault(seq, []).append((kid, sig))
        for row in rows:
            if row[0] == "unreadable":
                _, rid, seq, err = row
                rep.problems.append(f"custody log: event {seq} (row id {rid}) cannot be read as an event "
                                    f"(a forged or damaged row): {err}")
                prev_prev, prev_hash = prev_hash, None
                if not isinstance(seq, int):
                    after = None
                    break
                expected_seq, after = seq + 1, seq
                rep.events += 1
                continue
            if not isinstance(row.seq, int):
                rep.problems.append(f"custody log: row id {row.id} has a sequence number that is not a number "
                                    f"({row.seq!r}): a forged row")
                after = None
                break
            seq = row.seq
            if seq != expected_seq:
                rep.problems.append(f"custody log: events {expected_seq}..{seq - 1} are missing (deleted)"
                                    if seq > expected_seq else f"custody log: event {seq} is out of sequence")
            if row.id < last_id:
                rep.problems.append(f"custody log: event {seq} (row id {row.id}) was inserted before the event it "
                                    f"follows (row id {last_id}): rows reordered or renumbered")
            if prev_hash is not None and row.prev_hash != prev_hash:
                if prev_prev is not None and row.prev_hash == prev_prev:
                    rep.problems.append(f"custody log: event {seq} conflicts with event {seq - 1}: both claim to follow "
                                        f"event {seq - 2} (a second branch of the chain)")
                else:
                    rep.problems.append(f"custody log: event {seq} does not follow the previous event's hash")
            try:
                good = compute_hash(row.prev_hash or "", _fields(row)) == row.hash
            except Exception:  # noqa: BLE001 - a field of the wrong type is a finding
                good = False
            if not good:
                rep.problems.append(f"custody log: event {seq} ({row.action}) was altered after it was written")
            if keyring is not None and seq >= signed_from:
                rep.signatures_checked += 1
                why = _signature_problem(keyring, sigs.get(seq, []), seq, row.hash)
                if why:
                    sig_runs.add(why, seq)
                else:
                    sig_runs.flush()
                    if row.action in ACK_ACTIONS and good:
                        _note_replaced(rep, row.detail)
            elif row.action in ACK_ACTIONS and good and keyring is None:
                _note_replaced(rep, row.detail)
            if row.action == "chain_break":
                d = row.detail or {}
                rep.problems.append(f"custody log: event {seq}: the custody writer recorded a break: "
                                    f"{d.get('reason')} (head at {d.get('head_seq')}, foreign rows "
                                    f"{d.get('foreign_seqs')})")
            prev_prev, prev_hash = prev_hash, row.hash
            expected_seq, last_id, after = seq + 1, row.id, seq
            rep.last_seq, rep.last_hash = seq, row.hash
            rep.events += 1
        if after is None:
            break
        session.expunge_all()
    sig_runs.flush()
    head = session.execute(select(ChainHead.seq, ChainHead.hash).where(ChainHead.id == 1)).one_or_none()
    if head is None:
        rep.problems.append("custody log: chain head row is missing")
    elif head.seq > rep.last_seq:
        rep.problems.append(f"custody log: head says {head.seq} events but the log ends at {rep.last_seq} "
                            "(events removed from the end)")
    elif head.seq < rep.last_seq:
        rep.problems.append(f"custody log: events {head.seq + 1}..{rep.last_seq} lie beyond the chain head "
                            f"(seq {head.seq}): written around the custody writer")
    elif rep.events and head.hash != rep.last_hash:
        rep.problems.append(f"custody log: the chain head's hash does not match event {rep.last_seq}")
    return rep


def _signature_problem(keyring: Any, sigs: list[tuple[str, str]], seq: int, event_hash: str) -> str | None:
    if not sigs:
        return "no station signature: not written by the custody writer (forged or re-hashed)"
    why = None
    for kid, sig in sigs:
        why = keyring.verify(kid, signed_message(seq, event_hash), sig)
        if why is None:
            return None
    return f"station signature invalid ({why}): forged, edited or re-hashed"


def _note_replaced(rep: ChainReport, detail: dict[str, Any] | None) -> None:
    d = detail or {}
    chain = d.get("replaces_chain")
    if isinstance(chain, str):
        kept = d.get("kept_through")
        rep.replaced_chains[chain] = kept if isinstance(kept, int) else 0


def event_hash_at(session: Session, seq: int) -> str | None:
    """The hash the catalog holds for event `seq` (None when there is no such event)."""
    try:
        return session.execute(select(CustodyEvent.hash).where(CustodyEvent.seq == seq)).scalar_one_or_none()
    except Exception:  # noqa: BLE001 - duplicate/odd rows are reported by verify_chain
        session.rollback()
        return None
