"""Anchoring the custody log outside the catalog it protects.

A checkpoint is a small JSON object in the evidence store, under Object Lock:

    custody-log/checkpoints/<chain id>/<seq, 15 digits>-<station>-<UTC time>.json
    {"format": "custody-checkpoint/1", "chain_id", "seq", "hash", "at", "station", "key_id",
     "signed_from", "reason", "sig", "public_key"}

`sig` is the station's Ed25519 signature over the canonical JSON of every other field except
`public_key` (which is there for people; trust comes from the keyring).  Checkpoints are
written every `[custody_log].checkpoint_minutes` by the daemon, whenever a dock completes, by
`custody verify`, `custody backup` and `custody log checkpoint`.  Someone with rights on the
database but not on the store's locked objects nor the station's key file can no longer
rewrite, cut or re-hash the log unseen: the events at each checkpoint's seq must still hash
to what the checkpoint says.

Each station publishes its public key once, write-once, under `custody-log/keys/`.
"""
from __future__ import annotations

import json
import logging
import re
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from catalog import custody_log
from catalog.models import ChainHead, DockSession, LogAnchor, utcnow
from catalog.stationkey import Keyring, configured_keyring, public_from_text
from core.errors import CustodyError

log = logging.getLogger("custody.anchor")

PREFIX = "custody-log/"
CHECKPOINTS = PREFIX + "checkpoints/"
KEYS = PREFIX + "keys/"
FORMAT = "custody-checkpoint/1"
SIGNED_FIELDS = ("format", "chain_id", "seq", "hash", "at", "station", "key_id", "signed_from", "reason")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def safe_name(name: str) -> str:
    return (_UNSAFE.sub("_", name)[:64] or "station").lstrip(".") or "station"


def checkpoint_message(body: dict[str, Any]) -> bytes:
    return custody_log.canonical({k: body.get(k) for k in SIGNED_FIELDS})


def lock_object(app: Any, key: str, days: int) -> str | None:
    """Object Lock (S3) or the local store's lock for `days`; the error text when the store refuses."""
    try:
        app.store.set_retention(key, utcnow() + timedelta(days=days), app.settings.storage.object_lock_mode)
        return None
    except CustodyError as e:
        log.error("could not lock %s in the store: %s", key, e)
        return str(e)


def publish_key(app: Any) -> str:
    """Put this station's public key under custody-log/keys/ once (write-once, locked)."""
    k = app.station_key
    key = f"{KEYS}{safe_name(app.station)}-{k.key_id}.pub"
    if app.__dict__.get("_published_key") == key:
        return key
    if app.store.head(key) is None:
        app.store.put_bytes(key, f"{k.public_b64} {app.station}\n".encode(), content_type="text/plain")
        lock_object(app, key, app.settings.custody_log.checkpoint_lock_days)
    app.__dict__["_published_key"] = key
    return key


@dataclass
class Checkpoint:
    key: str
    body: dict[str, Any]

    @property
    def seq(self) -> int:
        return int(self.body["seq"])

    def describe(self) -> str:
        b = self.body
        return f"checkpoint {self.key} (seq {b.get('seq')}, station {b.get('station')}, {b.get('at')})"


def write_checkpoint(app: Any, reason: str) -> Checkpoint | None:
    """Sign the current chain head and put it in the store.  None when the log is empty."""
    with app.catalog.session() as s:
        head = s.execute(select(ChainHead.seq, ChainHead.hash).where(ChainHead.id == 1)).one()
        anchor = s.get(LogAnchor, 1)
        chain_id = anchor.chain_id if anchor else "unanchored"
        signed_from = anchor.signed_from if anchor else 1
    if head.seq <= 0:
        return None
    publish_key(app)
    k = app.station_key
    at = utcnow()
    body: dict[str, Any] = {"format": FORMAT, "chain_id": chain_id, "seq": head.seq, "hash": head.hash,
                            "at": at.isoformat(), "station": app.station, "key_id": k.key_id,
                            "signed_from": signed_from, "reason": reason}
    body["sig"] = k.sign(checkpoint_message(body))
    body["public_key"] = k.public_b64
    key = (f"{CHECKPOINTS}{safe_name(chain_id)}/{head.seq:015d}-{safe_name(app.station)}-"
           f"{at.strftime('%Y%m%dT%H%M%S%fZ')}.json")
    app.store.put_bytes(key, json.dumps(body, sort_keys=True, indent=1).encode(), content_type="application/json")
    lock_object(app, key, app.settings.custody_log.checkpoint_lock_days)
    log.info("custody log checkpoint at seq %s written to %s (%s)", head.seq, key, reason)
    return Checkpoint(key, body)


class Checkpointer:
    """Writes a checkpoint when asked and at least every `checkpoint_minutes` while the head moves."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.last_at: datetime | None = None
        self.last_seq: int | None = None

    def due(self) -> bool:
        minutes = self.app.settings.custody_log.checkpoint_minutes
        return minutes > 0 and (self.last_at is None or utcnow() - self.last_at >= timedelta(minutes=minutes))

    def checkpoint(self, reason: str) -> Checkpoint | None:
        """Never raises: the anchor is best effort at the moment, and its absence is visible to verify."""
        try:
            with self.app.catalog.session() as s:
                seq = s.execute(select(ChainHead.seq).where(ChainHead.id == 1)).scalar_one()
            if seq == self.last_seq and reason == "periodic":
                self.last_at = utcnow()
                return None
            cp = write_checkpoint(self.app, reason)
            self.last_at, self.last_seq = utcnow(), seq
            return cp
        except Exception as e:  # noqa: BLE001 - a store outage must not stop the station; retried next time
            log.error("custody log checkpoint (%s) not written: %s", reason, e)
            return None

    def tick(self) -> Checkpoint | None:
        return self.checkpoint("periodic") if self.due() else None


def run_worker(app: Any, stop_event: threading.Event, worker_id: str) -> None:
    """The daemon's anchor thread: a checkpoint whenever a dock of this station ends, at least
    every `checkpoint_minutes` while the log grows, and one when the station stops."""
    cp = Checkpointer(app)
    poll = max(0.2, min(5.0, app.settings.station.poll_seconds))
    seen = _last_dock_end(app)
    while not stop_event.wait(poll):
        try:
            ended = _last_dock_end(app)
        except Exception as e:  # noqa: BLE001 - catalog briefly away: try again
            log.warning("anchor %s: catalog unavailable: %s", worker_id, e)
            continue
        if ended is not None and (seen is None or ended > seen):
            seen = ended
            cp.checkpoint("dock")
        else:
            cp.tick()
    cp.checkpoint("shutdown")


def _last_dock_end(app: Any) -> datetime | None:
    with app.catalog.session() as s:
        return s.execute(select(func.max(DockSession.ended_at))
                         .where(DockSession.station == app.station)).scalar()


# --------------------------------------------------------------------------- reading
def read_json(app: Any, key: str) -> dict[str, Any]:
    data = b"".join(app.store.iter_bytes(key))
    body = json.loads(data.decode("utf-8"))
    if not isinstance(body, dict):
        raise ValueError("not a JSON object")
    return body


def store_keyring(app: Any) -> Keyring:
    """This station's key, the configured trusted keys, and (trust_store_keys) the published ones."""
    ring = configured_keyring(app.settings, app.station_key)
    if app.settings.custody_log.trust_store_keys:
        for key in app.store.list_keys(KEYS):
            try:
                text = b"".join(app.store.iter_bytes(key)).decode()
                ring.add(public_from_text(text.split()[0]), f"published in the store ({key})")
            except Exception as e:  # noqa: BLE001 - a bad key object is only not trusted
                log.warning("key object %s ignored: %s", key, e)
    return ring


@dataclass
class AnchorReport:
    checkpoints: int = 0
    superseded: int = 0
    problems: list[str] = field(default_factory=list)
    latest_seq: int = 0


def verify_checkpoints(app: Any, session: Session, chain: custody_log.ChainReport, ring: Keyring) -> AnchorReport:
    """Every checkpoint in the store against the catalog's chain; names each one contradicted."""
    rep = AnchorReport()
    anchor = session.get(LogAnchor, 1)
    current = anchor.chain_id if anchor else None
    if anchor is None:
        rep.problems.append("custody log: the anchor row (which chain this catalog holds) is missing")
    by_seq: dict[tuple[str, int], tuple[str, str]] = {}
    for key in app.store.list_keys(CHECKPOINTS):
        try:
            body = read_json(app, key)
            cp = Checkpoint(key, body)
            seq, chain_id = cp.seq, str(body["chain_id"])
        except Exception as e:  # noqa: BLE001
            rep.problems.append(f"custody log: checkpoint {key} is unreadable: {e}")
            continue
        why = ring.verify(str(body.get("key_id")), checkpoint_message(body), str(body.get("sig", "")))
        if why is None and body.get("format") != FORMAT:
            why = f"unknown format {body.get('format')!r}"
        if why is None and not key.startswith(f"{CHECKPOINTS}{safe_name(chain_id)}/{seq:015d}-"):
            why = "its name does not match its signed content (moved or copied)"
        if why:
            rep.problems.append(f"custody log: {cp.describe()} rejected as forged: {why}")
            continue
        rep.checkpoints += 1
        prior = by_seq.get((chain_id, seq))
        if prior and prior[0] != body["hash"]:
            rep.problems.append(f"custody log: {cp.describe()} conflicts with checkpoint {prior[1]}: two hashes for "
                                f"event {seq} of one chain")
        by_seq[(chain_id, seq)] = (str(body["hash"]), key)
        if chain_id == current:
            rep.latest_seq = max(rep.latest_seq, seq)
            if anchor is not None and body.get("signed_from") != anchor.signed_from:
                rep.problems.append(f"custody log: {cp.describe()} says signatures start at event "
                                    f"{body.get('signed_from')}; the catalog says {anchor.signed_from}")
            _compare(session, cp, chain, rep)
        elif chain_id in chain.replaced_chains:
            if seq <= chain.replaced_chains[chain_id]:
                _compare(session, cp, chain, rep)
            else:
                rep.superseded += 1  # a log this catalog knowingly replaced (rebuild/restore), said in the log
        else:
            rep.problems.append(f"custody log: {cp.describe()} belongs to chain {chain_id}, which this catalog "
                                f"neither holds nor says it replaced (chain {current}): the log was deleted or "
                                "replaced")
    return rep


def _compare(session: Session, cp: Checkpoint, chain: custody_log.ChainReport, rep: AnchorReport) -> None:
    seq, want = cp.seq, cp.body["hash"]
    got = custody_log.event_hash_at(session, seq)
    if got is None:
        if seq > chain.last_seq:
            rep.problems.append(f"custody log: the log ends at event {chain.last_seq} but {cp.describe()} says it "
                                f"held {seq} events: events cut or deleted")
        else:
            rep.problems.append(f"custody log: event {seq} named by {cp.describe()} is missing")
    elif got != want:
        rep.problems.append(f"custody log: event {seq} hashes to {got[:16]}… but {cp.describe()} says {want[:16]}…: "
                            "the log was rewritten or re-hashed before this point")
