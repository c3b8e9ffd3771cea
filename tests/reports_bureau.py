"""Reference data for the report tests, shaped like the bureau's 2021 law-enforcement report.

`bureau_2021`: 29 certified officers (4 in the bureau office, 25 in the enforcement
brigade, one brigade certificate revoked on 2021-07-01), 16 body cameras and 30
mobile terminals, plus records that must NOT be counted (an expired certificate,
an officer only seen on a dock, a retired camera, a camera bought in 2022).

`coverage_year`: a small year of inspections and footage whose every figure is
known by construction; `EXPECTED` states them.
"""
from __future__ import annotations

import hashlib
from datetime import date, datetime, timedelta, timezone
from itertools import count

from sqlalchemy.orm import Session

from catalog.models import Case, CaseOfficer, Device, DockSession, Media, MediaLink, Officer, Unit
from storage.base import media_key

CST = timezone(timedelta(hours=8))
BUREAU, OFFICE, BRIGADE, STREET = "440300000000", "440300000001", "440300000002", "440300100000"
REVOKED_BADGE = "B0117"
REVOKED_ON = date(2021, 7, 1)

_seq = count(1)


def local(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, s, tzinfo=CST)


# ----------------------------------------------------------------------------- people & devices
def units(session: Session) -> dict[str, Unit]:
    out = {
        BUREAU: Unit(code=BUREAU, name="应急管理局"),
        OFFICE: Unit(code=OFFICE, name="局机关", parent_code=BUREAU),
        BRIGADE: Unit(code=BRIGADE, name="执法大队", parent_code=BUREAU),
    }
    session.add_all(out.values())
    session.flush()
    return out


def bureau_2021(session: Session) -> dict[str, Unit]:
    u = units(session)
    for i in range(4):
        session.add(Officer(badge=f"A{i + 1:04d}", cert_no=f"CERT-A{i + 1:03d}", name=f"机关{i + 1}",
                            unit_id=u[OFFICE].id, certified_from=date(2019, 3, 1)))
    for i in range(25):
        badge = f"B{i + 101:04d}"
        o = Officer(badge=badge, cert_no=f"CERT-B{i + 101:03d}", name=f"大队{i + 1}", unit_id=u[BRIGADE].id,
                    certified_from=date(2018 + i % 3, 1, 1), certified_to=date(2024, 12, 31) if i % 2 else None)
        if badge == REVOKED_BADGE:  # left the enforcement post mid-year; certificate revoked
            o.status, o.status_changed_on = "revoked", REVOKED_ON
        session.add(o)
    # Never counted in 2021: expired certificate, certified only from 2022, seen on a dock only.
    session.add(Officer(badge="B0900", cert_no="CERT-OLD", name="已过期", unit_id=u[BRIGADE].id,
                        certified_from=date(2015, 1, 1), certified_to=date(2020, 12, 31)))
    session.add(Officer(badge="B0901", cert_no="CERT-NEW", name="新取证", unit_id=u[BRIGADE].id,
                        certified_from=date(2022, 1, 1)))
    session.add(Officer(badge="099999", source="device", unit_id=u[BRIGADE].id))
    for i in range(16):
        session.add(Device(serial=f"CAM{i + 1:04d}", kind="camera", unit_id=u[OFFICE if i < 2 else BRIGADE].id,
                           in_service_from=date(2020, 6, 1), source="import"))
    for i in range(30):
        session.add(Device(serial=f"TRM{i + 1:04d}", kind="terminal", unit_id=u[OFFICE if i < 4 else BRIGADE].id,
                           in_service_from=date(2020, 6, 1), source="import"))
    session.add(Device(serial="CAM0900", kind="camera", unit_id=u[BRIGADE].id, in_service_from=date(2016, 1, 1),
                       in_service_to=date(2020, 12, 31), source="import"))
    session.add(Device(serial="CAM0901", kind="camera", unit_id=u[BRIGADE].id, in_service_from=date(2022, 3, 1),
                       source="import"))
    session.add(Device(serial="PRN0001", kind="other", unit_id=u[BRIGADE].id, in_service_from=date(2020, 6, 1)))
    session.flush()
    return u


# ----------------------------------------------------------------------------- a year of inspections
EXPECTED = {
    "inspections": 12,
    "covered": 9, "partial": 1, "outside_window": 1, "no_footage": 1,
    "fewer_than_two": {"INS-2021-07", "INS-2021-10", "INS-2021-11", "INS-2021-12"},
    "late": 2,  # officer B's two March files, docked 30 h after the end
    "untimed": 1,
    "recordings": 42,
    # Unlinked and docked more than 3 days before NOW: Feb, Apr (unplayable), May, Jun (never docked:
    # counted from its end), Aug.  December's clips (routine, and B's with a removed link) are too recent.
    "unlinked": 5,
    "unlinked_any_age": 7,
    "unplayable": 2,
    "undocked": {"CAM0002", "CAM0003"},
    "devices_checked": 4,
    "clock": {"CAM0001", "TRM0001"},
}
NOW = datetime(2022, 1, 2, 12, 0, tzinfo=timezone.utc)


def add_media(session: Session, *, device: Device, officer: Officer, start: datetime, minutes: float,
              dock_after: timedelta | None = timedelta(hours=3), flags: list[str] | None = None) -> Media:
    n = next(_seq)
    sha = hashlib.sha256(f"clip-{n}-{start.isoformat()}".encode()).hexdigest()
    end = start + timedelta(minutes=minutes)
    name = f"{officer.badge}_{start.astimezone(CST):%Y%m%d%H%M%S}_{n:04d}.MP4"
    m = Media(sha256=sha, size=1000 + n, kind="video", storage_key=media_key(sha), device_id=device.id,
              officer_id=officer.id, officer_badge=officer.badge, unit_code=BRIGADE, original_path=f"DCIM/{name}",
              original_name=name, device_start_text=f"{start.astimezone(CST):%Y-%m-%d %H:%M:%S}",
              recorded_start=start, recorded_end=end, duration_seconds=minutes * 60, time_source="filename",
              docked_at=end + dock_after if dock_after is not None else None, flags=flags or [],
              flag_reasons={"unplayable": "moov atom not found"} if flags and "unplayable" in flags else {})
    session.add(m)
    session.flush()
    return m


def link(session: Session, media: Media, case: Case, active: bool = True) -> None:
    session.add(MediaLink(media_id=media.id, case_id=case.id, method="auto", reason="officer and time",
                          active=active, removed_reason=None if active else "wrong case"))


def coverage_year(session: Session) -> None:
    """Twelve monthly inspections 10:00-11:00 local by officers A and B of the brigade."""
    u = units(session)
    brig = u[BRIGADE].id
    cams = [Device(serial=f"CAM{i:04d}", kind="camera", unit_id=brig, in_service_from=date(2020, 1, 1))
            for i in range(1, 5)]
    trm = Device(serial="TRM0001", kind="terminal", unit_id=brig, in_service_from=date(2020, 1, 1),
                 last_clock_offset_seconds=400.0)
    a = Officer(badge="B0101", cert_no="C1", unit_id=brig, certified_from=date(2019, 1, 1))
    b = Officer(badge="B0102", cert_no="C2", unit_id=brig, certified_from=date(2019, 1, 1))
    session.add_all([*cams, trm, a, b])
    session.flush()
    cam_a, cam_b = cams[0], cams[1]

    for month in range(1, 13):
        day = 31 if month == 12 else 15
        start = local(2021, month, day, 22 if month == 12 else 10)
        case = Case(case_no=f"INS-2021-{month:02d}", kind="inspection", enterprise=f"企业{month}", unit_id=brig,
                    start=start, end=start + timedelta(hours=1))
        session.add(case)
        session.flush()
        session.add_all([CaseOfficer(case_id=case.id, officer_id=a.id), CaseOfficer(case_id=case.id, officer_id=b.id)])
        _footage_for(session, month, case, start, a, b, cam_a, cam_b)

    # Outside the period or not an inspection: never counted.
    for no, kind, start in (("INS-2020-LATE", "inspection", local(2020, 12, 31, 23, 30)),
                            ("INS-2022-EARLY", "inspection", local(2022, 1, 1, 0, 30)),
                            ("PEN-2021-01", "penalty", local(2021, 5, 5, 9))):
        session.add(Case(case_no=no, kind=kind, unit_id=brig, start=start, end=start + timedelta(hours=1)))

    # Routine footage nobody linked: three old enough to list, one docked too recently (Dec 31).
    for when in (local(2021, 2, 1, 9), local(2021, 5, 1, 9), local(2021, 8, 1, 9)):
        add_media(session, device=cam_a, officer=a, start=when, minutes=5)
    add_media(session, device=cam_a, officer=a, start=local(2021, 12, 31, 8), minutes=5)
    add_media(session, device=cam_a, officer=a, start=local(2021, 6, 1, 9), minutes=5, dock_after=None)
    add_media(session, device=cam_b, officer=b, start=local(2021, 4, 1, 9), minutes=1, flags=["unplayable"])
    _docks(session, cams)
    session.flush()


def _footage_for(session: Session, month: int, case: Case, start: datetime, a: Officer, b: Officer,
                 cam_a: Device, cam_b: Device) -> None:
    def two_parts(officer: Officer, cam: Device, dock_after: timedelta = timedelta(hours=3)) -> None:
        # Recorders split at about 30 min here; the next part starts 2 s after the last ends.
        first = add_media(session, device=cam, officer=officer, start=start - timedelta(minutes=2), minutes=32,
                          dock_after=dock_after)
        second = add_media(session, device=cam, officer=officer, start=first.recorded_end + timedelta(seconds=2),
                           minutes=31, dock_after=dock_after)
        link(session, first, case)
        link(session, second, case)

    if month <= 6:
        two_parts(a, cam_a)
        two_parts(b, cam_b, dock_after=timedelta(hours=30) if month == 3 else timedelta(hours=3))
    elif month == 7:  # only officer A recorded
        two_parts(a, cam_a)
    elif month == 8:  # both stopped after half an hour
        for officer, cam in ((a, cam_a), (b, cam_b)):
            link(session, add_media(session, device=cam, officer=officer, start=start, minutes=30), case)
    elif month == 9:  # recorded the next day: wrong link or wrong clock
        for officer, cam in ((a, cam_a), (b, cam_b)):
            link(session, add_media(session, device=cam, officer=officer, start=start + timedelta(days=1),
                                    minutes=60), case)
    elif month == 10:  # nothing at all
        pass
    elif month == 11:  # B's files are unplayable: they prove nothing
        two_parts(a, cam_a)
        clip = add_media(session, device=cam_b, officer=b, start=start, minutes=60, flags=["unplayable"])
        link(session, clip, case)
    else:  # December 31st: B's link was removed by a reviewer
        two_parts(a, cam_a)
        clip = add_media(session, device=cam_b, officer=b, start=start, minutes=60, dock_after=timedelta(hours=1))
        link(session, clip, case, active=False)


def _docks(session: Session, cams: list[Device]) -> None:
    """CAM0001 docks weekly (one dock 45 s fast), CAM0002 stops in November, CAM0003 never docks."""
    badges = {cams[0].id: "B0101", cams[1].id: "B0102"}

    def dock(cam: Device, at: datetime, offset: float | None) -> None:
        device_reads = (at + timedelta(seconds=offset or 0)).astimezone(CST)
        session.add(DockSession(station="station-01", volume_path=f"/docks/{cam.serial}", device_id=cam.id,
                                officer_badge=badges.get(cam.id),
                                state="complete", started_at=at, clock_offset_seconds=offset,
                                device_clock_text=f"{device_reads:%Y-%m-%d %H:%M:%S}",
                                station_clock_at_read=at))
    day = local(2021, 1, 4, 18)
    while day < local(2022, 1, 1):
        dock(cams[0], day, 45.0 if day.month == 6 and day.day <= 7 else 1.0)
        day += timedelta(days=7)
    for m in range(1, 12):
        dock(cams[1], local(2021, m, 1, 18), 2.0)
    dock(cams[3], local(2021, 12, 30, 18), 5.0)
    dock(cams[3], local(2020, 12, 1, 18), -300.0)  # before the period: not a 2021 clock error
