"""`custody storage selftest`: prove the store refuses to delete or overwrite a locked object.

Some S3-compatible stores accept Object Lock calls and then delete anyway.  This puts a
probe object, locks it for a few seconds (retain-until + legal hold), tries to delete,
overwrite and shorten it, checks the probe's bytes after each attempt, then checks the
legal hold alone still blocks deletion once the retain-until passed, and finally
releases it and deletes it (proving the refusals came from the lock, not a broken
delete).  Every check is reported; nothing is assumed from a call merely succeeding.
"""
from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

Status = Literal["pass", "fail", "warn"]


@dataclass
class Check:
    name: str
    status: Status
    detail: str


@dataclass
class SelftestReport:
    store: str
    mode: str
    probe_key: str
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.status != "fail" for c in self.checks)

    def add(self, name: str, status: Status, detail: str) -> None:
        self.checks.append(Check(name, status, detail))

    def as_json(self) -> dict[str, Any]:
        return {"store": self.store, "mode": self.mode, "probe_key": self.probe_key, "ok": self.ok,
                "checks": [c.__dict__ for c in self.checks]}


class _Probe:
    """Store-specific raw access the ObjectStore protocol deliberately does not offer."""

    def __init__(self, store: Any, key: str, version: str | None) -> None:
        self.store, self.key, self.version = store, key, version
        self.s3 = hasattr(store, "client") and hasattr(store, "bucket")

    def read_original(self) -> bytes | None:
        try:
            if self.s3:
                extra = {"VersionId": self.version} if self.version else {}
                return self.store.client.get_object(Bucket=self.store.bucket, Key=self.key, **extra)["Body"].read()
            path = self.store.local_path(self.key)
            return path.read_bytes() if path else None
        except Exception:  # noqa: BLE001 - any failure to read means: not intact
            return None

    def raw_overwrite(self, data: bytes) -> str:
        """Write new bytes to the key the way a careless client would; describe what the store did."""
        if self.s3:
            r = self.store.client.put_object(Bucket=self.store.bucket, Key=self.key, Body=data)
            return f"store accepted the write as new version {r.get('VersionId')}"
        self.store.put_bytes(self.key, data)
        return "store ignored the write (objects are written once)"

    def shorten(self, until: datetime, mode: str) -> None:
        """Try to shorten the locked version's retain-until (by version id: a later version could differ)."""
        if self.s3 and self.version:
            self.store.client.put_object_retention(Bucket=self.store.bucket, Key=self.key, VersionId=self.version,
                                                   Retention={"Mode": mode, "RetainUntilDate": until})
        else:
            self.store.set_retention(self.key, until, mode)

    def release_hold(self) -> None:
        if self.s3 and self.version:
            self.store.client.put_object_legal_hold(Bucket=self.store.bucket, Key=self.key, VersionId=self.version,
                                                    LegalHold={"Status": "OFF"})
        else:
            self.store.set_legal_hold(self.key, False)

    def retain_until(self) -> datetime | None:
        if self.s3 and self.version:
            r = self.store.client.get_object_retention(Bucket=self.store.bucket, Key=self.key, VersionId=self.version)
            return r.get("Retention", {}).get("RetainUntilDate")
        info = self.store.head(self.key)
        return info.retain_until if info else None

    def file_writable(self) -> bool | None:
        if self.s3:
            return None
        path = self.store.local_path(self.key)
        try:
            with open(path, "r+b"):
                return True
        except PermissionError:
            return False

    def bucket_lock(self) -> tuple[bool, str]:
        if not self.s3:
            return True, "local store: retention kept in the _locks sidecar"
        try:
            cfg = self.store.client.get_object_lock_configuration(Bucket=self.store.bucket)
        except Exception as e:  # noqa: BLE001
            return False, f"bucket {self.store.bucket} reports no Object Lock configuration ({e})"
        enabled = cfg.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") == "Enabled"
        return enabled, f"bucket {self.store.bucket} ObjectLockEnabled={enabled}"


def _attempt(fn: Any) -> str | None:
    """Run a call that should be refused; None if it was refused, else 'accepted'."""
    try:
        fn()
    except Exception:  # noqa: BLE001 - our error types and raw client errors are both refusals
        return None
    return "accepted"


def _intact(rep: SelftestReport, probe: _Probe, data: bytes, name: str, what: str, accepted: str | None) -> None:
    got = probe.read_original()
    if got == data:
        note = "refused" if accepted is None else f"{accepted}"
        rep.add(name, "pass", f"{what}: {note}; the locked bytes are intact")
    elif got is None:
        rep.add(name, "fail", f"{what}: {'accepted' if accepted else 'reported refused'} but the locked object is GONE")
    else:
        rep.add(name, "fail", f"{what}: the locked object's bytes CHANGED")


def run_selftest(store: Any, mode: str = "COMPLIANCE", lock_seconds: float = 3.0) -> SelftestReport:
    key = f"selftest/{uuid.uuid4().hex}"
    data = f"custody storage selftest probe {key} {datetime.now(timezone.utc).isoformat()}".encode()
    rep = SelftestReport(store=store.url, mode=mode, probe_key=key)
    stored = store.put_bytes(key, data, content_type="text/plain")  # also creates the bucket if configured
    probe = _Probe(store, key, stored.version_id)
    ok, detail = probe.bucket_lock()
    rep.add("object_lock_enabled", "pass" if ok else "fail", detail)
    # Whole seconds: S3 keeps retain-until to the second, and the checks compare exactly.
    until = (datetime.now(timezone.utc) + timedelta(seconds=lock_seconds + 1)).replace(microsecond=0)
    _lock(rep, store, key, until, mode)
    _attempts(rep, store, probe, data, until, mode)
    _after_expiry(rep, store, probe, data, until)
    return rep


def _lock(rep: SelftestReport, store: Any, key: str, until: datetime, mode: str) -> None:
    for name, fn in (("retention_accepted", lambda: store.set_retention(key, until, mode)),
                     ("legal_hold_accepted", lambda: store.set_legal_hold(key, True))):
        try:
            fn()
            rep.add(name, "pass", "the store accepted the call")
        except Exception as e:  # noqa: BLE001
            rep.add(name, "fail", f"the store refused: {e}")
    info = store.head(key)
    shown = info.retain_until if info else None
    if shown is not None and shown == until and info.legal_hold:
        rep.add("lock_visible", "pass", f"store reports retain-until {shown.isoformat()} and legal hold ON")
    else:
        rep.add("lock_visible", "fail", f"store reports retain-until {shown} legal_hold={info and info.legal_hold}")


def _attempts(rep: SelftestReport, store: Any, probe: _Probe, data: bytes, until: datetime, mode: str) -> None:
    _intact(rep, probe, data, "delete_refused", "delete while locked", _attempt(lambda: store.delete(probe.key)))
    accepted = _attempt(lambda: probe.shorten(until - timedelta(seconds=1), mode))
    shown = probe.retain_until()
    if accepted is None and shown is not None and shown >= until:
        rep.add("shorten_refused", "pass", "shortening retain-until was refused")
    else:
        rep.add("shorten_refused", "fail", f"retain-until {until.isoformat()} could be shortened: the call was "
                f"{'accepted' if accepted else 'refused'} and the store now reports {shown}")
    try:
        what = probe.raw_overwrite(b"overwritten by custody selftest")
        _intact(rep, probe, data, "overwrite_refused", "overwrite while locked", what)
    except Exception:  # noqa: BLE001
        _intact(rep, probe, data, "overwrite_refused", "overwrite while locked", None)
    writable = probe.file_writable()
    if writable:
        rep.add("file_write_protected", "warn", f"this process (uid {os.getuid()}) can open the object file for "
                "writing: read-only permissions do not bind root; only the sweeper deletes, but use S3 Object "
                "Lock where tampering by an administrator must be impossible")
    elif writable is False:
        rep.add("file_write_protected", "pass", "the object file is read-only to this process")


def _after_expiry(rep: SelftestReport, store: Any, probe: _Probe, data: bytes, until: datetime) -> None:
    time.sleep(max(0.0, (until - datetime.now(timezone.utc)).total_seconds()) + 1.0)
    _intact(rep, probe, data, "legal_hold_blocks_delete", "delete after retain-until, legal hold still on",
            _attempt(lambda: store.delete(probe.key)))
    try:
        probe.release_hold()
    except Exception:  # noqa: BLE001 - a store without locks refuses this; still clean up below
        pass
    try:
        store.delete(probe.key)
    except Exception as e:  # noqa: BLE001
        rep.add("delete_after_release", "fail", f"probe {probe.key} could not be deleted after release: {e}")
        return
    if store.head(probe.key) is None and probe.read_original() is None:
        rep.add("delete_after_release", "pass", "once released and expired the probe was deleted")
    else:
        rep.add("delete_after_release", "fail", f"the store still holds probe {probe.key} after deleting it")
