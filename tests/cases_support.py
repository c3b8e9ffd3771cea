"""Shared helpers for the case tests: a realistic day of reference data and recordings.

The day (2026-11-20, UTC+08:00) at one enforcement brigade:
- JC-2026-0101 09:00–10:00 (310001 张伟, 310002 李娜): two cameras and a terminal record it.
- JC-2026-0102 10:30–11:15 and JC-2026-0103 11:20–12:00: back-to-back, same team.
- JC-2026-0104 13:00–14:00 (310001, 310002) and JC-2026-0105 13:30–14:30 (310001, 310004): overlapping.
- JC-2026-0201 08:30–09:00 and JC-2026-0202 09:20–10:00 (310003 王强, 310004 刘洋); A100003 runs 7 min fast.
- 310003 swaps A100003 for A100004 at 12:00; JC-2026-0203 14:00–15:00 (310003, 310001) and
  JC-2026-0204 14:00–15:00 (310004, 310002) run at the same time.
Recordings are real MP4 files in the object store; their catalog rows are what the ingest
pipeline writes (corrected UTC times beside the device's own reading).
"""
from __future__ import annotations

import csv
import hashlib
import json
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import select

from catalog.app import App
from cases import linking, refdata
from catalog.models import Case, Device, Media, MediaLink, ReviewItem
from storage.base import media_key

CST = timezone(timedelta(hours=8))
DAY = date(2026, 11, 20)
UNIT = "310115000000"


def at(hhmm: str, day: date = DAY) -> datetime:
    h, m, *s = (int(x) for x in hhmm.split(":"))
    return datetime.combine(day, time(h, m, s[0] if s else 0), CST)


def write_csv(path: Path, header: list[str], rows: list[list[Any]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def write_json(path: Path, items: list[dict[str, Any]]) -> Path:
    path.write_text(json.dumps(items, ensure_ascii=False, indent=2), encoding="utf-8")
    return path


def import_file(app: App, kind: str, path: Path, actor: str = "admin") -> refdata.ImportReport:
    with app.catalog.session() as s:
        return refdata.import_file(s, app.settings, kind, path, actor)


# --------------------------------------------------------------------------- reference data
OFFICERS = [
    ["310001", "沪应急证0001", "张伟", UNIT, "2020-01-01", "", "active"],
    ["310002", "沪应急证0002", "李娜", UNIT, "2020-01-01", "", "active"],
    ["310003", "沪应急证0003", "王强", UNIT, "2021-03-01", "", "active"],
    ["310004", "沪应急证0004", "刘洋", UNIT, "2021-03-01", "", "active"],
]
DEVICES = [
    ["A100001", "camera", UNIT], ["A100002", "camera", UNIT], ["T200001", "terminal", UNIT],
    ["A100003", "camera", UNIT], ["A100004", "camera", UNIT], ["A100005", "执法记录仪", UNIT],
]
ASSIGNMENTS = [
    ["A100001", "310001", "2026-11-01 08:00", ""],
    ["A100002", "310002", "2026-11-01 08:00", ""],
    ["A100003", "310003", "2026-11-01 08:00", "2026-11-20 12:00"],
    ["A100004", "310003", "2026-11-20 12:00", ""],  # the swap: before this A100004 has no assignment
    ["A100005", "310004", "2026-11-01 08:00", ""],
]
CASE_HEADER = ["case_no", "kind", "enterprise", "address", "unit_code", "officers", "start", "end",
               "hazards_found", "status", "closed_at", "parent_case_no"]
CASES = [
    ["JC-2026-0101", "inspection", "上海华东化工有限公司", "浦东新区川沙路1号", UNIT, "310001;310002",
     "2026-11-20 09:00", "2026-11-20 10:00", "是", "closed", "2026-11-21 17:00", ""],
    ["JC-2026-0102", "检查", "东方仓储有限公司", "浦东新区龙东大道2号", UNIT, "310001、310002",
     "2026-11-20 10:30", "2026-11-20 11:15", "否", "open", "", ""],
    ["JC-2026-0103", "inspection", "申江物流有限公司", "浦东新区龙东大道8号", UNIT, "310001;310002",
     "2026-11-20 11:20", "2026-11-20 12:00", "no", "open", "", ""],
    ["JC-2026-0104", "inspection", "浦江五金厂", "浦东新区沪南路3号", UNIT, "310001;310002",
     "2026-11-20 13:00", "2026-11-20 14:00", "0", "open", "", ""],
    ["JC-2026-0105", "inspection", "新城加油站", "浦东新区沪南路5号", UNIT, "310001;310004",
     "2026-11-20T13:30:00+08:00", "2026-11-20T06:30:00Z", "0", "open", "", ""],
    ["JC-2026-0201", "inspection", "金桥电子有限公司", "浦东新区金桥路9号", UNIT, "310003;310004",
     "2026-11-20 08:30", "2026-11-20 09:00", "0", "open", "", ""],
    ["JC-2026-0202", "inspection", "金桥印刷厂", "浦东新区金桥路11号", UNIT, "310003;310004",
     "2026-11-20 09:20", "2026-11-20 10:00", "0", "open", "", ""],
    ["JC-2026-0203", "inspection", "张江生物医药公司", "浦东新区张江路1号", UNIT, "310003;310001",
     "2026-11-20 14:00", "2026-11-20 15:00", "0", "open", "", ""],
    ["JC-2026-0204", "inspection", "张江餐饮管理公司", "浦东新区张江路7号", UNIT, "310004;310002",
     "2026-11-20 14:00", "2026-11-20 15:00", "0", "open", "", ""],
]


def import_reference(app: App, tmp: Path, cases: bool = True) -> None:
    d = tmp / "refdata"
    d.mkdir(exist_ok=True)
    import_file(app, "units", write_json(d / "units.json", [
        {"code": UNIT, "name": "浦东新区应急管理局执法大队", "standard_officers_per_device": 4}]))
    import_file(app, "officers", write_csv(d / "officers.csv", ["badge", "cert_no", "name", "unit_code",
                                                                "certified_from", "certified_to", "status"], OFFICERS))
    import_file(app, "devices", write_csv(d / "devices.csv", ["serial", "kind", "unit_code"], DEVICES))
    import_file(app, "assignments", write_csv(d / "assignments.csv",
                                              ["device_serial", "officer_badge", "valid_from", "valid_to"], ASSIGNMENTS))
    if cases:
        import_file(app, "cases", write_csv(d / "cases.csv", CASE_HEADER, CASES))


# --------------------------------------------------------------------------- recordings
class Recorder:
    """Stores real clips and writes the Media rows the ingest pipeline would, then links
    them as the indexer does once a recording's true time is fixed."""

    def __init__(self, app: App, clips: list[Path]) -> None:
        self.app = app
        self.clips = list(clips)

    def record(self, device: str | None, badge: str | None, start: datetime, minutes: float = 2.0, *,
               offset: float | None = 0.0, name: str | None = None, meta: dict[str, Any] | None = None,
               device_offset_known: bool = True) -> int:
        """A recording that truly started at `start`; the device's clock read start + offset."""
        clip = self.clips.pop(0)
        data = clip.read_bytes()
        sha = hashlib.sha256(data).hexdigest()
        stored = self.app.store.put_bytes(media_key(sha), data, content_type="video/mp4")
        dev_clock = start + timedelta(seconds=offset or 0.0)
        fname = name or f"{device or 'X'}_{badge or '000000'}_{dev_clock:%Y%m%d%H%M%S}_0001.MP4"
        with self.app.catalog.session() as s:
            dev = None
            if device:
                dev = s.execute(select(Device).where(Device.serial == device)).scalar_one_or_none()
                if dev is None:
                    dev = Device(serial=device, kind="camera", source="dock")
                    s.add(dev)
                if device_offset_known and offset is not None:
                    dev.last_clock_offset_seconds = offset
                s.flush()
            m = Media(sha256=sha, size=len(data), kind="video", storage_key=stored.key,
                      storage_checksum=stored.checksum, device_id=dev.id if dev else None, officer_badge=badge,
                      unit_code=UNIT, original_path=f"DCIM/{dev_clock:%Y%m%d}/{fname}", original_name=fname,
                      device_start_text=dev_clock.strftime("%Y-%m-%d %H:%M:%S"), device_start=dev_clock,
                      recorded_start=start, recorded_end=start + timedelta(minutes=minutes),
                      duration_seconds=minutes * 60, time_source="filename", clock_offset_seconds=offset,
                      clock_offset_source="dock" if offset is not None else None, meta=meta or {}, flags=[])
            s.add(m)
            s.flush()
            linking.link_recording(s, self.app.settings, m)
            return m.id


def active_cases(app: App, media_id: int) -> dict[str, MediaLink]:
    with app.catalog.session() as s:
        rows = s.execute(select(Case.case_no, MediaLink).join(MediaLink, MediaLink.case_id == Case.id).where(
            MediaLink.media_id == media_id, MediaLink.active.is_(True))).all()
        return {no: ln for no, ln in rows}


def open_review(app: App, media_id: int) -> ReviewItem | None:
    with app.catalog.session() as s:
        items = s.execute(select(ReviewItem).where(ReviewItem.media_id == media_id,
                                                   ReviewItem.state == "open")).scalars().all()
        assert len(items) <= 1, "one open review item per recording"
        return items[0] if items else None


def make_clips(directory: Path, n: int) -> list[Path]:
    """n distinct tiny MP4s (different creation times -> different bytes)."""
    from ingest.simulate import make_video

    base = datetime(2026, 11, 20, 1, 0, tzinfo=timezone.utc)
    return [make_video(directory / f"clip{i:03d}.mp4", 0.4, size="160x120", rate=5, audio=False,
                       creation_time=base + timedelta(seconds=i)) for i in range(n)]
