"""The custody log's anchors and the catalog's recoverability (issue 17; docs/custody-log.md).

custody log checkpoint|export|key
custody backup [--list]
custody restore [KEY]
custody catalog rebuild --from-store | catalog records
"""
from __future__ import annotations

import base64
import getpass
import json
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import click
from sqlalchemy import select

from catalog import custody_log, objrecord
from catalog.anchor import CHECKPOINTS, Checkpointer, publish_key, read_json, store_keyring
from catalog.app import App
from catalog.backup import backup as run_backup
from catalog.backup import is_empty, list_backups, restore as run_restore
from catalog.models import CustodyEvent, CustodySignature, LogAnchor, Media
from catalog.rebuild import rebuild as run_rebuild
from core.errors import ConfigError, CustodyError, PermissionDenied
from custody.commands.common import acting, echo_json

EXPORT_FORMAT = "custody-log-export/1"


def _os_actor() -> str:
    try:
        return f"os:{getpass.getuser()}"
    except Exception:  # noqa: BLE001 - no passwd entry (containers)
        return "os:unknown"


# --------------------------------------------------------------------------- custody log
@click.group("log")
def log_group() -> None:
    """Custody log anchors: checkpoints, export, station key / 监管日志锚定."""


@log_group.command("checkpoint")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output. / 机器可读输出")
@click.pass_obj
def checkpoint_cmd(app: App, as_json: bool) -> None:
    """Sign the chain head now and lock it in the store / 立即写入签名检查点."""
    cp = Checkpointer(app).checkpoint("manual")
    if cp is None:
        with app.catalog.session() as s:
            empty = s.execute(select(CustodyEvent.id).limit(1)).first() is None
        if not empty:
            raise CustodyError("checkpoint not written (see the log above) / 检查点未写入")
        click.echo("the custody log is empty: nothing to anchor / 监管日志为空")
        return
    if as_json:
        echo_json({"key": cp.key, **cp.body})
    else:
        click.echo(f"checkpoint / 检查点: seq {cp.seq} {cp.body['hash'][:16]}… -> {cp.key}")


@log_group.command("key")
@click.option("--publish/--no-publish", default=True, show_default=True,
              help="Also put the public key under custody-log/keys/ in the store. / 同时把公钥写入存储的 custody-log/keys/")
@click.pass_obj
def key_cmd(app: App, publish: bool) -> None:
    """Print this station's public key (for other stations' trusted_keys) / 显示本站公钥."""
    k = app.station_key
    if publish:
        publish_key(app)
    click.echo(f"{k.public_b64} {app.station} key_id={k.key_id}")


def _bound(text: str | None) -> tuple[str, Any] | None:
    """--from/--to: an event number, or an ISO 8601 instant with its offset."""
    if text is None:
        return None
    if text.isdigit():
        return "seq", int(text)
    try:
        dt = datetime.fromisoformat(text)
    except ValueError as e:
        raise ConfigError(f"{text!r} is neither an event number nor an ISO time like 2027-01-01T00:00+08:00") from e
    if dt.tzinfo is None:
        raise ConfigError(f"{text!r}: give a UTC offset (e.g. +08:00); a bare time is ambiguous")
    return "at", dt.astimezone(timezone.utc)


@log_group.command("export")
@click.option("--from", "from_", default=None, help="First event: number or ISO time (default: the first). / 起始事件:序号或 ISO 时间(默认第一条)")
@click.option("--to", "to", default=None, help="Last event: number or ISO time (default: the last). / 结束事件:序号或 ISO 时间(默认最后一条)")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write to this file (default: standard output). / 写入此文件(默认标准输出)")
@click.pass_obj
def export_cmd(app: App, from_: str | None, to: str | None, output: Path | None) -> None:
    """Events, signatures and checkpoints for verification outside the system / 导出监管日志供离线核验."""
    lo, hi = _bound(from_), _bound(to)
    with app.catalog.session() as s:
        who = acting(app, s, "view", "custody-log-export")
        if not (who.can("audit") or who.can("admin") or who.role == "system"):
            raise PermissionDenied(f"{who.username} ({who.role}) may not export the custody log")
        q = select(CustodyEvent).order_by(CustodyEvent.seq)
        for b, op in ((lo, "ge"), (hi, "le")):
            if b:
                col = CustodyEvent.seq if b[0] == "seq" else CustodyEvent.at
                q = q.where(col >= b[1]) if op == "ge" else q.where(col <= b[1])
        events = s.execute(q).scalars().all()
        seqs = [e.seq for e in events]
        sigs: dict[int, list[dict[str, str]]] = {}
        if seqs:
            for seq, kid, sig in s.execute(select(CustodySignature.seq, CustodySignature.key_id, CustodySignature.sig)
                                           .where(CustodySignature.seq >= seqs[0], CustodySignature.seq <= seqs[-1])):
                sigs.setdefault(seq, []).append({"key_id": kid, "sig": sig})
        anchor = s.get(LogAnchor, 1)
        out: dict[str, Any] = {
            "format": EXPORT_FORMAT, "exported_at": datetime.now(timezone.utc).isoformat(),
            "station": app.station, "exported_by": who.username,
            "chain_id": anchor.chain_id if anchor else None,
            "events": [{"fields": custody_log.event_fields(e), "prev_hash": e.prev_hash, "hash": e.hash,
                        "signatures": sigs.get(e.seq, [])} for e in events],
        }
        custody_log.record(s, "log_exported", actor=who.username, subject="custody-log",
                           detail={"from": seqs[0] if seqs else None, "to": seqs[-1] if seqs else None,
                                   "events": len(seqs), "file": output.name if output else None})
    ring = store_keyring(app)
    out["keys"] = {kid: {"public_key": base64.b64encode(raw).decode(), "source": src}
                   for kid, (raw, src) in ring.keys.items()}
    cps = []
    if seqs:
        for key in app.store.list_keys(CHECKPOINTS):
            try:
                body = read_json(app, key)
            except Exception:  # noqa: BLE001 - verify reports unreadable checkpoints
                continue
            if isinstance(body.get("seq"), int) and seqs[0] <= body["seq"] <= seqs[-1]:
                cps.append({"key": key, **body})
    out["checkpoints"] = cps
    data = json.dumps(out, ensure_ascii=False, indent=1)
    if output:
        output.write_text(data + "\n", encoding="utf-8")
        click.echo(f"{len(out['events'])} events, {len(cps)} checkpoints -> {output}", err=True)
    else:
        click.echo(data)


# --------------------------------------------------------------------------- backup / restore
@click.command("backup")
@click.option("--list", "list_", is_flag=True, help="List the backups in the store instead. / 改为列出存储中的备份")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output. / 机器可读输出")
@click.pass_obj
def backup_cmd(app: App, list_: bool, as_json: bool) -> None:
    """Consistent catalog backup into the store under Object Lock / 目录库备份(写入对象存储并锁定)."""
    if list_:
        items = list_backups(app)
        if as_json:
            echo_json(items)
        else:
            for m in items:
                click.echo(f"{m.get('at')}  {m.get('object')}  {m.get('size')} bytes  events 1..{m.get('head_seq')}")
        return
    with app.catalog.session() as s:
        who = acting(app, s, "admin", "catalog-backup")
    res = run_backup(app, who.username)
    if as_json:
        echo_json(res.to_json())
    else:
        click.echo(f"backup / 备份: {res.key} ({res.size} bytes, sha256 {res.sha256[:16]}…, events 1..{res.head_seq})")


@click.command("restore")
@click.argument("key", required=False)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output. / 机器可读输出")
@click.pass_obj
def restore_cmd(app: App, key: str | None, as_json: bool) -> None:
    """Restore a backup (default: the latest) into an EMPTY catalog / 从备份恢复到空目录库."""
    res = run_restore(app, key, _os_actor())
    if as_json:
        echo_json(res)
    else:
        click.echo(f"restored / 已恢复: {res['backup']} (events 1..{res['kept_through']} kept; later ones are lost "
                   f"and the log says so). Run `custody verify`.")


# --------------------------------------------------------------------------- catalog
@click.group("catalog")
def catalog_group() -> None:
    """Rebuild the catalog from the store; object records / 从存储重建目录库."""


@catalog_group.command("rebuild")
@click.option("--from-store", "from_store", is_flag=True, required=True,
              help="Rebuild from the evidence store's objects and records (the only source today). / 根据证据存储中的对象和记录重建(目前唯一来源)")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output. / 机器可读输出")
@click.pass_obj
def rebuild_cmd(app: App, from_store: bool, as_json: bool) -> None:
    """Recreate an EMPTY catalog from the store alone / 仅凭对象存储重建目录库."""
    if "catalog" in app.__dict__ or not is_empty(app.settings.catalog_url):
        raise CustodyError("rebuild: the catalog is not empty; point [catalog].url (or CUSTODY_CATALOG_URL) at a new "
                           "SQLite file or an empty PostgreSQL database / 目录库非空")
    rep = run_rebuild(app, _os_actor())
    if as_json:
        echo_json(rep.to_json())
    else:
        click.echo(f"rebuilt / 已重建: {rep.recordings} recordings ({rep.without_record} without a record), "
                   f"{rep.purged} purged, {rep.derivatives} keyframes/thumbnails")
        for p in rep.problems:
            click.echo(f"PROBLEM: {p}")
        click.echo("lost with the old catalog / 随原目录库丢失: " + "; ".join(rep.lost))
        for chain, last in rep.replaced_chains.items():
            click.echo(f"old custody log {chain}: last checkpoint seq {last.get('seq')} at {last.get('at')}")
    sys.exit(1 if rep.problems else 0)


@catalog_group.command("records")
@click.pass_obj
def records_cmd(app: App) -> None:
    """Write missing object records beside stored recordings / 补写对象自描述记录."""
    with app.catalog.session() as s:
        acting(app, s, "admin", "object-records")
        ids = s.execute(select(Media.id).where(Media.status == "stored").order_by(Media.id)).scalars().all()
    written = 0
    for mid in ids:
        with app.catalog.session() as s:
            m = s.get(Media, mid)
            key = objrecord.record_key(m.storage_key)
        if app.store.head(key) is None and objrecord.write_for_media(app, mid):
            written += 1
    click.echo(f"{written} object records written ({len(ids)} recordings)")


COMMANDS = [log_group, backup_cmd, restore_cmd, catalog_group]
