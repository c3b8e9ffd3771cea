"""One offload per device across every station: a lease row per device serial in the catalog.

A station that starts offloading a device takes the device's lease (`device_leases`: owner
station, holder token, expiry, heartbeat) and renews it while it copies; it releases it when
the offload ends.  Another station that finds the lease held refuses the device for now
(`LeaseHeld`; the daemon tries again while the device stays docked).  A station that dies
stops renewing: once `expires_at` passes any station may take the device, and the taking is
a custody event (`lease_taken`) naming the station it was taken from.

The row is read `FOR UPDATE` (PostgreSQL) or inside SQLite's exclusive write transaction, so
two stations never both see the lease free.  Two first-ever inserts race on the UNIQUE serial;
the loser reads the winner's row.  Within one station the per-device file lock still guards
the daemon against `custody ingest` on the same machine; with that lock held, the station's
own stale lease (left by its previous, killed process) may be taken back at once
(`own_stale_ok`).
"""
from __future__ import annotations

import logging
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from catalog import custody_log
from catalog.db import Catalog
from catalog.models import DeviceLease, utcnow

log = logging.getLogger("custody.leases")


class LeaseHeld(Exception):
    """Another station (or process) holds this device's offload lease."""

    def __init__(self, serial: str, station: str, expires_at: datetime) -> None:
        super().__init__(f"device {serial} is being offloaded by station {station} (lease until "
                         f"{expires_at.isoformat(timespec='seconds')}); trying again while it stays docked "
                         f"/ 该设备正在采集站 {station} 导入")
        self.serial, self.station, self.expires_at = serial, station, expires_at


@dataclass
class Lease:
    serial: str
    station: str
    holder: str
    expires_at: datetime
    taken_from: str | None = None  # the station whose expired lease this one replaced


def acquire(catalog: Catalog, serial: str, station: str, seconds: float, *, actor: str | None = None,
            own_stale_ok: bool = False, now: datetime | None = None) -> Lease:
    """Take the device's lease or raise LeaseHeld."""
    for _ in range(3):
        try:
            return _acquire(catalog, serial, station, seconds, actor, own_stale_ok, now)
        except IntegrityError:
            continue  # another station inserted the first row at the same moment: read it now
    raise LeaseHeld(serial, "?", now or utcnow())


def _acquire(catalog: Catalog, serial: str, station: str, seconds: float, actor: str | None,
             own_stale_ok: bool, now: datetime | None) -> Lease:
    holder = uuid.uuid4().hex
    with catalog.session() as s:
        t = now or utcnow()
        until = t + timedelta(seconds=seconds)
        row = s.execute(select(DeviceLease).where(DeviceLease.serial == serial).with_for_update()).scalar_one_or_none()
        if row is None:
            s.add(DeviceLease(serial=serial, station=station, holder=holder, acquired_at=t, heartbeat_at=t,
                              expires_at=until))
            s.flush()
            return Lease(serial, station, holder, until)
        live = row.released_at is None and row.expires_at > t
        if live and not (own_stale_ok and row.station == station):
            raise LeaseHeld(serial, row.station, row.expires_at)
        taken_from = row.station if row.released_at is None else None
        if taken_from is not None:
            custody_log.record(s, "lease_taken", actor=actor or f"station:{station}", subject=f"device:{serial}",
                               outcome="ok", detail={
                                   "from_station": row.station, "to_station": station,
                                   "expired_at": row.expires_at.isoformat(),
                                   "last_heartbeat": row.heartbeat_at.isoformat(),
                                   "reason": ("the holder stopped renewing (station stopped or killed)" if not live
                                              else "this station's previous process left it (its device lock is free)")})
            log.warning("device %s: took over the offload lease of station %s (%s)", serial, row.station,
                        "expired" if not live else "left by this station's previous process")
        row.station, row.holder, row.acquired_at, row.heartbeat_at = station, holder, t, t
        row.expires_at, row.released_at, row.taken_from = until, None, taken_from
        return Lease(serial, station, holder, until, taken_from)


def renew(catalog: Catalog, lease: Lease, seconds: float) -> bool:
    """Extend our lease; False when it is no longer ours (it expired and was taken)."""
    with catalog.session() as s:
        t = utcnow()
        res = s.execute(update(DeviceLease)
                        .where(DeviceLease.serial == lease.serial, DeviceLease.holder == lease.holder,
                               DeviceLease.released_at.is_(None))
                        .values(heartbeat_at=t, expires_at=t + timedelta(seconds=seconds))
                        .execution_options(synchronize_session=False))
        if res.rowcount == 1:
            lease.expires_at = t + timedelta(seconds=seconds)
            return True
        return False


def release(catalog: Catalog, lease: Lease) -> bool:
    with catalog.session() as s:
        res = s.execute(update(DeviceLease)
                        .where(DeviceLease.serial == lease.serial, DeviceLease.holder == lease.holder,
                               DeviceLease.released_at.is_(None))
                        .values(released_at=utcnow())
                        .execution_options(synchronize_session=False))
        return res.rowcount == 1


class HeldLease:
    """`with HeldLease(catalog, serial, station, seconds): ...` — takes the lease (or raises
    LeaseHeld), renews it every third of its life on a thread, releases it at the end.
    `lost` is set if a renewal finds the lease taken (the caller should stop the offload)."""

    def __init__(self, catalog: Catalog, serial: str, station: str, seconds: float, *, actor: str | None = None,
                 own_stale_ok: bool = False) -> None:
        self.catalog, self.serial, self.station, self.seconds = catalog, serial, station, seconds
        self.actor, self.own_stale_ok = actor, own_stale_ok
        self.lease: Lease | None = None
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> "HeldLease":
        self.lease = acquire(self.catalog, self.serial, self.station, self.seconds, actor=self.actor,
                             own_stale_ok=self.own_stale_ok)
        self._thread = threading.Thread(target=self._renew_loop, name=f"lease-{self.serial}", daemon=True)
        self._thread.start()
        return self

    def _renew_loop(self) -> None:
        assert self.lease is not None
        while not self._stop.wait(max(self.seconds / 3, 0.05)):
            try:
                if not renew(self.catalog, self.lease, self.seconds):
                    log.error("device %s: the offload lease was lost (expired and taken by another station)",
                              self.serial)
                    self.lost.set()
                    return
            except Exception as e:  # noqa: BLE001 - catalog briefly away: the lease has slack, try again
                log.warning("device %s: lease renewal failed: %s", self.serial, e)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self.lease is not None and not self.lost.is_set():
            try:
                release(self.catalog, self.lease)
            except Exception as e:  # noqa: BLE001 - it expires by itself
                log.warning("device %s: lease release failed (it expires by itself): %s", self.serial, e)


def current(catalog: Catalog, now: datetime | None = None) -> list[DeviceLease]:
    """Leases held now (not released, not expired)."""
    t = now or utcnow()
    with catalog.session() as s:
        return list(s.execute(select(DeviceLease).where(DeviceLease.released_at.is_(None),
                                                        DeviceLease.expires_at > t)
                              .order_by(DeviceLease.serial)).scalars())
