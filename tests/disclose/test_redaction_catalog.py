"""Derived recordings in the catalog and the store (SQLite and PostgreSQL): `custody redact`,
`custody redaction approve`, `custody media get/show`; the original never changes."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from catalog.accounts import add_account
from catalog.models import CustodyEvent, Hold, Media, MediaTag, Redaction
from custody.cli import cli
from disclose import derived
from disclose_support import decode_frames, make_clip, store_original
from retention.load import decide_one
from retention.rules import rules_for
from storage.fixity import sha256_file


@pytest.fixture
def world(make_app, catalog_url: str, tmp_path: Path, ffmpeg_ok: None):  # noqa: ANN001, ANN201
    app = make_app(catalog_url)
    with app.catalog.session() as s:
        add_account(s, "rev1", "reviewer")
        add_account(s, "rev2", "reviewer")
        add_account(s, "P00009", "inspector", badge="P00009")
    clip = make_clip(tmp_path / "REC_0001.mp4", seconds=3.0)
    mid = store_original(app, clip.path)
    return app, clip, mid, tmp_path / "custody.toml"


def run(cfg: Path, user: str, *args: str):  # noqa: ANN201
    return CliRunner().invoke(cli, ["--config", str(cfg), "--user", user, *args], catch_exceptions=False)


def events(app, action: str) -> list[CustodyEvent]:  # noqa: ANN001
    with app.catalog.session() as s:
        rows = s.execute(select(CustodyEvent).where(CustodyEvent.action == action).order_by(CustodyEvent.seq))
        out = list(rows.scalars())
        s.expunge_all()
        return out


def test_redact_stores_a_derived_copy_and_leaves_the_original(world) -> None:  # noqa: ANN001
    app, clip, mid, cfg = world
    with app.catalog.session() as s:
        orig = s.get(Media, mid)
        before = {c: getattr(orig, c) for c in ("sha256", "size", "storage_key", "storage_checksum", "status")}
    orig_bytes = Path(app.store.local_path(before["storage_key"])).read_bytes()
    res = run(cfg, "rev1", "redact", str(mid), "--from", "0.4", "--to", "2.4", "--faces", "--mute", "1-1.5",
              "--reason", "隐患曝光台 publication", "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    d, o = out["derived"], out["original"]
    assert o == {"id": mid, "sha256": before["sha256"]}
    assert d["id"] != mid and d["sha256"] != before["sha256"]
    # Its own object in the same store, content-addressed, holding exactly those bytes.
    path = app.store.local_path(d["storage_key"])
    assert path is not None and sha256_file(path) == d["sha256"]
    assert len(decode_frames(path, clip.width, clip.height)) == 50
    # The original: same row, same bytes, same hash.
    with app.catalog.session() as s:
        orig = s.get(Media, mid)
        assert {c: getattr(orig, c) for c in before} == before
        der = s.get(Media, d["id"])
        assert der.derived_from == mid and der.kind == "video" and der.status == "stored"
        red = s.execute(select(Redaction).where(Redaction.derived_media_id == d["id"])).scalar_one()
        assert red.original_media_id == mid and red.created_by == "rev1" and red.approved_at is None
        lg = red.log
        assert lg["reason"] == "隐患曝光台 publication" and lg["by"] == "rev1"
        assert lg["faces"]["detector"]["name"] == "centerface" and lg["faces"]["detector"]["threshold"] == 0.4
        assert lg["mute"] == [[1.0, 1.5]] and lg["segment"]["from"] == 0.4
        assert not derived.approved(s, d["id"]) and not derived.approved(s, mid)
    assert Path(app.store.local_path(before["storage_key"])).read_bytes() == orig_bytes
    assert sha256_file(app.store.local_path(before["storage_key"])) == before["sha256"]
    made = events(app, "redacted")
    assert len(made) == 1 and made[0].actor == "rev1" and made[0].media_id == d["id"]
    assert made[0].detail["original_sha256"] == before["sha256"]
    assert [e.media_id for e in events(app, "derived")] == [mid]
    # `media show` names the original; the original names its copy; the copy is flagged unapproved.
    shown = json.loads(run(cfg, "rev2", "media", "show", str(d["id"]), "--json").output)
    assert shown["derived_from"] == mid and shown["redaction"]["approved"] is False
    assert json.loads(run(cfg, "rev2", "media", "show", str(mid), "--json").output)["derived_copies"] == [d["id"]]
    text = run(cfg, "rev2", "redaction", "show", str(d["id"]))
    assert text.exit_code == 0 and "NOT approved" in text.output


def test_approval_needs_a_second_reviewer(world) -> None:  # noqa: ANN001
    app, clip, mid, cfg = world
    res = run(cfg, "rev1", "redact", str(mid), "--from", "0", "--to", "1", "--faces", "--reason", "court copy",
              "--json")
    did = json.loads(res.output)["derived"]["id"]
    own = run(cfg, "rev1", "redaction", "approve", str(did))
    assert own.exit_code == 4 and "second reviewer" in own.output
    refused = events(app, "redaction_approved")
    assert [(e.actor, e.outcome) for e in refused] == [("rev1", "refused")]
    insp = run(cfg, "P00009", "redaction", "approve", str(did))
    assert insp.exit_code == 4
    ok = run(cfg, "rev2", "redaction", "approve", str(did), "--note", "checked every frame", "--json")
    assert ok.exit_code == 0, ok.output
    body = json.loads(ok.output)
    assert body["approved"] is True and body["approved_by"] == "rev2" and body["created_by"] == "rev1"
    with app.catalog.session() as s:
        assert derived.approved(s, did)
    assert [(e.actor, e.outcome) for e in events(app, "redaction_approved")] == [("rev1", "refused"),
                                                                               ("rev2", "ok")]
    again = run(cfg, "rev2", "redaction", "approve", str(did))
    assert again.exit_code == 1 and "already approved" in again.output
    # Approving an original is not a thing.
    assert run(cfg, "rev2", "redaction", "approve", str(mid)).exit_code == 3


def test_an_inspector_cannot_redact_and_a_reason_is_required(world) -> None:  # noqa: ANN001
    app, clip, mid, cfg = world
    res = run(cfg, "P00009", "redact", str(mid), "--faces", "--reason", "mine")
    assert res.exit_code == 4
    res = run(cfg, "rev1", "redact", str(mid), "--faces", "--reason", "")
    assert res.exit_code == 1 and "reason" in res.output
    res = run(cfg, "rev1", "redact", str(mid), "--from", "9", "--faces", "--reason", "past the end")
    assert res.exit_code == 1 and "past the recording's end" in res.output
    failed = events(app, "redacted")
    assert [(e.outcome, e.media_id) for e in failed] == [("failed", mid)]
    with app.catalog.session() as s:
        assert s.execute(select(Media).where(Media.derived_from.is_not(None))).first() is None


def test_media_get_writes_original_or_derived_bytes_and_logs_it(world, tmp_path: Path) -> None:  # noqa: ANN001
    app, clip, mid, cfg = world
    did = json.loads(run(cfg, "rev1", "redact", str(mid), "--still", "1.0", "--faces", "--reason", "still",
                         "--json").output)["derived"]["id"]
    with app.catalog.session() as s:
        der = s.get(Media, did)
        assert der.kind == "photo" and der.storage_key.startswith("media/sha256/")
        dsha = der.sha256
    got = run(cfg, "rev2", "media", "get", str(did), "--out", str(tmp_path / "still.jpg"))
    assert got.exit_code == 0, got.output
    assert sha256_file(tmp_path / "still.jpg") == dsha and (tmp_path / "still.jpg").read_bytes()[:2] == b"\xff\xd8"
    got = run(cfg, "rev2", "media", "get", str(mid), "--out", str(tmp_path / "orig.mp4"))
    assert got.exit_code == 0 and (tmp_path / "orig.mp4").read_bytes() == clip.path.read_bytes()
    dl = events(app, "downloaded")
    assert [(e.actor, e.media_id, e.detail["via"]) for e in dl] == [("rev2", did, "cli"), ("rev2", mid, "cli")]
    # An inspector who is not this recording's officer may not download it; the refusal is logged.
    assert run(cfg, "P00009", "media", "get", str(mid), "--out", str(tmp_path / "x")).exit_code == 4
    assert not (tmp_path / "x").exists()


def test_the_derived_copy_gets_the_originals_object_lock(world) -> None:  # noqa: ANN001
    app, clip, mid, cfg = world
    until = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(days=200)
    app.store.set_retention(_key(app, mid), until, "COMPLIANCE")
    with app.catalog.session() as s:
        m = s.get(Media, mid)
        m.lock_until, m.keep_until, m.keep_rule = until, until, "default"
    out = json.loads(run(cfg, "rev1", "redact", str(mid), "--to", "1", "--reason", "segment for court",
                         "--json").output)
    info = app.store.head(out["derived"]["storage_key"])
    assert info is not None and info.retain_until == until
    with app.catalog.session() as s:
        der = s.get(Media, out["derived"]["id"])
        assert der.lock_until == until and der.keep_until == until
    locked = [e for e in events(app, "retention_locked") if e.media_id == out["derived"]["id"]]
    assert locked and locked[0].detail["from_original"] == mid


def _key(app, mid: int) -> str:  # noqa: ANN001
    with app.catalog.session() as s:
        return s.get(Media, mid).storage_key


def test_a_derived_copy_is_kept_as_long_as_its_original(world) -> None:  # noqa: ANN001
    """Retention decides a copy by its original's time, tags and holds (retention/load.py)."""
    app, clip, mid, cfg = world
    did = json.loads(run(cfg, "rev1", "redact", str(mid), "--from", "0.5", "--to", "1.5", "--reason", "copy",
                         "--json").output)["derived"]["id"]
    now = datetime.now(timezone.utc)
    rules = rules_for(app)
    with app.catalog.session() as s:
        base_o, base_d = decide_one(s, s.get(Media, mid), rules, now), decide_one(s, s.get(Media, did), rules, now)
        assert (base_d.keep_until, base_d.rule) == (base_o.keep_until, base_o.rule)
        s.add(MediaTag(media_id=mid, tag="complaint", reason="complaint about the inspection", created_by="rev2"))
    with app.catalog.session() as s:
        o, d = decide_one(s, s.get(Media, mid), rules, now), decide_one(s, s.get(Media, did), rules, now)
        assert o.rule != base_o.rule and (d.keep_until, d.rule) == (o.keep_until, o.rule)
        s.add(Hold(target_kind="media", target_ref=str(mid), reason="reconsideration", created_by="rev2"))
    with app.catalog.session() as s:
        assert decide_one(s, s.get(Media, did), rules, now).held
        assert decide_one(s, s.get(Media, mid), rules, now).held
