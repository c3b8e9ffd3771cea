"""`custody verify`: re-read every stored object, recompute SHA-256, check the custody chain.

Like bagit's validation, it reports every problem it finds rather than stopping at the
first, and it really reads the bytes (an integrity check that passes without checking
is worse than none).
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from catalog.anchor import Checkpointer, store_keyring, verify_checkpoints
from catalog.app import App
from catalog import custody_log
from catalog.models import CustodyEvent, LogAnchor, Media
from catalog.stationkey import configured_keyring
from core.errors import CustodyError
from storage.fixity import sha256_stream


@dataclass
class Problem:
    kind: str  # object|custody_log
    message: str
    media_id: int | None = None
    sha256: str | None = None


@dataclass
class AuditReport:
    objects_checked: int = 0
    bytes_read: int = 0
    events_checked: int = 0
    signatures_checked: int = 0
    checkpoints_checked: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "objects_checked": self.objects_checked, "bytes_read": self.bytes_read,
                "events_checked": self.events_checked, "signatures_checked": self.signatures_checked,
                "checkpoints_checked": self.checkpoints_checked,
                "problems": [p.__dict__ for p in self.problems]}


def _check_object(app: App, mid: int, key: str, sha: str, size: int,
                  read: Callable[[Iterator[bytes]], Iterator[bytes]] | None = None) -> tuple[int, int, Problem | None]:
    """Re-read one object and compare size and SHA-256 (`read` wraps the byte stream: the
    scheduled fixity check of catalog.fixity rate-limits it there)."""
    try:
        chunks = app.store.iter_bytes(key)
        got, n = sha256_stream(read(chunks) if read else chunks)
    except Exception as e:  # noqa: BLE001 - a missing or unreadable object is a finding, not a crash
        return mid, 0, Problem("object", f"media {mid}: object {key} could not be read: {e}", mid, sha)
    if n != size:
        return mid, n, Problem("object", f"media {mid}: object {key} has {n} bytes, catalog says {size}", mid, sha)
    if got != sha:
        return mid, n, Problem("object", f"media {mid}: object {key} hashes to {got}, catalog says {sha}", mid, sha)
    return mid, n, None


# A recording enters the log with one of these events (`redacted`: a derived copy, issue 18;
# `recovered`: re-entered from the store's object record by `custody catalog rebuild`).
ENTRY_ACTIONS = ("stored", "redacted", "recovered")


def check_log(app: App, s: Session, rep: AuditReport) -> None:
    """The chain (hashes, order, signatures), the store's checkpoints, and every recording's entry."""
    anchor = s.get(LogAnchor, 1)
    try:
        ring = store_keyring(app)
    except CustodyError as e:
        ring = configured_keyring(app.settings, app.station_key)
        rep.problems.append(Problem("custody_log", f"custody log: published station keys could not be read: {e}"))
    chain = custody_log.verify_chain(s, keyring=ring, signed_from=anchor.signed_from if anchor else 1)
    rep.events_checked = chain.events
    rep.signatures_checked = chain.signatures_checked
    rep.problems += [Problem("custody_log", p) for p in chain.problems]
    try:
        anc = verify_checkpoints(app, s, chain, ring)
    except CustodyError as e:
        rep.problems.append(Problem("custody_log", f"custody log: checkpoints could not be read from the store: {e}"))
    else:
        rep.checkpoints_checked = anc.checkpoints
        rep.problems += [Problem("custody_log", p) for p in anc.problems]
    entered = select(CustodyEvent.id).where(CustodyEvent.media_id == Media.id,
                                            CustodyEvent.action.in_(ENTRY_ACTIONS))
    try:
        lost = s.execute(select(Media.id, Media.sha256).where(~exists(entered)).order_by(Media.id).limit(1000)).all()
    except Exception as e:  # noqa: BLE001 - forged rows must be reported, never crash verify
        s.rollback()
        rep.problems.append(Problem("custody_log", f"custody log: recordings' entries could not be checked: {e}"))
        lost = []
    for mid, sha in lost:
        rep.problems.append(Problem("custody_log", f"media {mid}: no `stored` event in the custody log "
                                    "(its entry was erased, or the row was added around the pipeline)", mid, sha))


def verify_all(app: App, *, actor: str, progress: Callable[[int, int], None] | None = None,
               workers: int = 4) -> AuditReport:
    rep = AuditReport()
    with app.catalog.session() as s:
        rows = s.execute(select(Media.id, Media.storage_key, Media.sha256, Media.size)
                         .where(Media.status == "stored").order_by(Media.id)).all()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for _mid, n, prob in pool.map(lambda r: _check_object(app, *r), rows):
            rep.objects_checked += 1
            rep.bytes_read += n
            if prob:
                rep.problems.append(prob)
            if progress:
                progress(rep.objects_checked, n)
    with app.catalog.session() as s:
        check_log(app, s, rep)
    with app.catalog.session() as s:
        custody_log.record(s, "verified", actor=actor, outcome="ok" if rep.ok else "failed", subject="fixity-audit",
                           detail={"objects": rep.objects_checked, "bytes": rep.bytes_read,
                                   "events": rep.events_checked, "checkpoints": rep.checkpoints_checked,
                                   "problems": [p.message for p in rep.problems][:100]})
    if rep.ok:  # a broken log is never anchored: the earlier checkpoints keep saying what it was
        Checkpointer(app).checkpoint("verify")
    return rep
