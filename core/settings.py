"""Typed configuration, declared once.

Order: `--config FILE`, else `$CUSTODY_CONFIG`, else the shipped `config/custody.toml`.
`CUSTODY_CATALOG_URL` and `CUSTODY_STORAGE_URL` override the file.  Relative paths
are resolved against `$CUSTODY_HOME` (default: the current directory) so the
embedded default runs from a checkout with no set-up.
"""
from __future__ import annotations

import os
import socket
import tomllib
from datetime import timedelta, timezone
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from core.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parent.parent
SHIPPED_CONFIG_DIR = REPO_ROOT / "config"
SHIPPED_CONFIG = SHIPPED_CONFIG_DIR / "custody.toml"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _host_name() -> str:
    return (socket.gethostname().split(".", 1)[0] or "station")[:64]


class StationSettings(_Section):
    name: str = Field(
        default_factory=_host_name, min_length=1, max_length=64, json_schema_extra={"example": '"office-dock-1"'},
        description="This station's name, unique among the stations sharing the catalog; recorded on every dock "
                    "session, spool copy, job claim and custody event (docs/stations.md). Default: the host name. "
                    "/ 采集站名称，各站唯一；默认取主机名")
    timezone: str = Field("+08:00", description='UTC offset shown to people (instants are stored in UTC).')
    dock_root: Path = Field(
        Path("var/docks"),
        description='Each docked device appears here as a directory (a mounted volume).')
    spool_dir: Path = Field(
        Path("var/spool"),
        description='Durable station copies awaiting upload (tmp, objects, locks, damaged, uploads).')
    settle_seconds: float = Field(3.0, description='A volume must be unchanged this long before it is offloaded.')
    poll_seconds: float = Field(2.0, description='Rescan of the dock root (mounts raise no inotify event).')
    max_concurrent_devices: int = Field(4, description='Devices offloaded at once, each in its own worker.')
    wipe_after_verify: bool = Field(
        False,
        description='Delete device files only after they are stored and verified (off by default).')
    min_free_spool_bytes: int = Field(
        512 * 1024 * 1024,
        description='Below this free space in the spool a dock is refused loudly; nothing is deleted to make room.')
    file_stable_seconds: float = Field(
        1.0,
        description='A file modified more recently is treated as still being written.')
    file_busy_retries: int = Field(
        3,
        description='How often a file still being written is waited for before it is skipped unwiped.')
    copy_chunk_bytes: int = Field(
        8 * 1024 * 1024,
        description='One read of the device per chunk; 6 chunks in flight.')
    upload_retry_seconds: float = Field(
        5.0,
        description='First back-off of the uploader when the store is unreachable (doubles each time).')
    upload_workers: int = Field(2, description='Files stored while the next ones are still being copied.')
    profiles_dir: Path | None = Field(
        None, json_schema_extra={'example': '"devices"'},
        description='Default: config/devices beside the config file.')
    heartbeat_seconds: float = Field(
        default=10.0, gt=0,
        description="The daemon rewrites this station's row in the catalog this often; `custody stations` and the "
                    "station page show a station down after 3 missed beats / 心跳间隔（秒）")
    device_lease_seconds: float = Field(
        default=60.0, gt=0,
        description="One offload per device across stations: the device's lease in the catalog is renewed while "
                    "it is offloaded and expires this long after the last renewal (a dead station's device may then "
                    "be taken by another) / 设备导入租约时长（秒）")


class FixitySettings(_Section):
    """Scheduled fixity (issue 16): every stored object re-read and re-hashed at least once per
    `fixity_days`, by whichever station claims its `fixity` job; reads are rate limited."""
    fixity_days: float = Field(
        default=90.0, gt=0,
        description="Every stored object is re-read and re-hashed at least this often (days), through the same "
                    "check as `custody verify` / 定期校验周期（天）")
    bytes_per_second: int = Field(
        default=20 * 1024 * 1024, ge=0,
        description="Read rate limit of the scheduled checks, per station (0 = none) / 校验读取限速（字节/秒）")
    workers: int = Field(
        default=1, ge=0,
        description="Fixity workers in this station's daemon (0 = this station does no scheduled checks) "
                    "/ 本站校验线程数")
    schedule_minutes: float = Field(
        default=10.0, gt=0,
        description="How often a station queues the objects coming due (one station at a time) / 排期间隔（分钟）")


class CatalogSettings(_Section):
    url: str = Field(
        "sqlite:///var/catalog.db",
        description='The catalog database: sqlite:///PATH (embedded default) or postgresql+psycopg2://user@host/db '
                    '(postgresql:// and postgres:// mean the same driver).')
    auto_migrate: bool = Field(
        True,
        description='Run the Alembic migrations when the catalog is opened (serialised across processes).')


class StorageSettings(_Section):
    url: str = Field(
        "file://var/objects",
        description='The evidence store: file://PATH (embedded default) or s3://BUCKET.')
    endpoint_url: str | None = Field(
        None, json_schema_extra={'example': '"http://127.0.0.1:8333"'},
        description='S3-compatible endpoint (SeaweedFS, MinIO, Ceph RGW); default: AWS_ENDPOINT_URL_S3/AWS_ENDPOINT_URL or AWS.')
    region: str = Field("us-east-1", description='S3 region name.')
    multipart_threshold_bytes: int = Field(
        1024 * 1024 * 1024,
        description="Up to this size one PUT carries the dock's SHA-256 as its checksum: the station hashes nothing again and the store one pass less.  Larger files go multipart (retry per part; each part hashed again for its own checksum).  1 GiB keeps a camera's usual 5-15 min clips (300-900 MB at 8 Mbit/s) in one PUT.")
    multipart_chunk_bytes: int = Field(
        64 * 1024 * 1024,
        description='Part size of a multipart upload (each part streamed from the spool with its own SHA-256).')
    upload_concurrency: int = Field(4, description='Parts of one multipart upload sent at once.')
    object_lock_mode: Literal["COMPLIANCE", "GOVERNANCE"] = Field(
        "COMPLIANCE",
        description='Object Lock mode for evidence: COMPLIANCE (nobody can shorten) or GOVERNANCE.')
    create_bucket: bool = Field(True, description='Create the bucket with Object Lock when it is missing.')
    presign_seconds: int = Field(300, description='Lifetime of presigned URLs.')


class IndexerSettings(_Section):
    workers: int = Field(
        1,
        description='Indexing workers per daemon (0: recordings wait for `custody index --pending`).')
    keyframe_interval_seconds: float = Field(
        30.0,
        description='At most one planned keyframe per this many seconds (scene changes add more).')
    keyframe_max_per_clip: int = Field(40, description='At most this many keyframes per recording.')
    thumbnail_width: int = Field(320, description='Width of keyframe and photo thumbnails, in pixels.')
    job_lease_seconds: float = Field(
        600.0,
        description='A claimed job is retaken by another worker when its lease is not renewed for this long.')
    max_attempts: int = Field(3, description='A job that failed this many times is marked failed with its reason.')
    keyframe_width: int = Field(1280, description='Stored keyframe JPEGs are scaled down to this width.')
    retry_seconds: float = Field(30.0, description='Back-off before a failed job is tried again (doubles each time)')
    idle_poll_seconds: float = Field(2.0, description='How often an idle worker looks for new jobs.')


class LinkingSettings(_Section):
    margin_minutes: float = Field(
        15.0,
        description="A recording may start or end this long outside an inspection's window and still link to it.")
    clock_uncertain_seconds: float = Field(
        120.0,
        description='Clock uncertainty of a recording whose device clock was not measured.')
    case_no_pattern: str = Field(
        r"[A-Z]{2,6}-\d{4}-\d{2,8}|[\u4e00-\u9fff]{1,10}〔\d{4}〕\d{1,6}号",
        description='Case numbers searched for in file names and sidecars (matches are looked up in the catalog).')
    auto_kinds: list[str] = Field(
        default_factory=lambda: ["inspection", "coercive"],
        description='Case kinds linked by officer + time; others (penalty files spanning weeks) by name, sidecar or hand.')
    equal_fit_seconds: float = Field(
        default=60.0, ge=0,
        description="Two unrelated cases fit a recording 'about equally well' when the recording's distances "
                    "from their windows (0 when it overlaps a window) differ by at most this many seconds; the "
                    "recording then goes to the review queue with both candidates instead of being linked to "
                    "the nearer one. 0 turns the rule off (only several strong candidates are doubtful).")


class ReportSettings(_Section):
    standard_officers_per_device: float = Field(
        4.0,
        description='The standard: certified officers per recording device (1 device per 4 officers here).')
    unit_standards: dict[str, float] = Field(
        default_factory=dict, json_schema_extra={'example': '"120102000000" = 2.0'},
        description="Per-unit standards (unit code = officers per device); a unit without one inherits its parent's.")
    counted_device_kinds: list[str] = Field(
        default_factory=lambda: ["camera"],
        description='Device kinds counted in the ratio and coverage reports.')
    upload_deadline_hours: float = Field(
        24.0,
        description='A recording must be docked within this many hours after it ends.')
    undocked_days: int = Field(7, description='A device not docked for longer is listed.')
    clock_error_threshold_seconds: float = Field(
        30.0,
        description='A device whose measured clock error exceeds this is listed.')
    unlinked_days: int = Field(3, description='A recording unlinked for longer is listed.')
    coverage_tolerance_seconds: float = Field(
        120.0,
        description='Footage gap/edge allowed inside an inspection window.')


class RetentionSettings(_Section):
    rules_file: Path | None = Field(
        None, json_schema_extra={'example': '"retention.toml"'},
        description='Default: config/retention.toml beside the config file.')
    apply_locks: bool = Field(True, description="Mirror keep-until and holds into the store's Object Lock.")
    open_ended_lock_days: int = Field(
        365,
        description='Retain-until horizon for recordings kept permanently/open-ended.')


class WebSettings(_Section):
    host: str = Field("127.0.0.1", description='Address `custody serve` listens on.')
    port: int = Field(8080, description='Port `custody serve` listens on.')
    session_hours: float = Field(8.0, description='A login session ends after this many hours.')
    lockout_failures: int = Field(5, description=(
        "Wrong passwords from one address for one account before that (account, address) pair is locked for "
        "lockout_minutes; other addresses are not affected (docs/web.md) / 同一地址对同一账号密码错误次数上限"))
    lockout_minutes: float = Field(15.0, description='How long a locked address+account pair waits.')
    require_mfa_for: list[str] = Field(
        default_factory=list, json_schema_extra={"example": '["administrator", "auditor"]'}, description=(
        "Roles that must give a TOTP code after the password (enrolled at their first login, with recovery "
        "codes) / 须二次验证(TOTP)的角色"))
    login_per_minute_per_address: int = Field(20, description=(
        "Login attempts per minute from one address; more are refused / 每个地址每分钟登录次数上限"))
    login_per_minute_per_account: int = Field(10, description=(
        "Login attempts per minute for one account name / 每个账号每分钟登录次数上限"))
    anonymous_per_minute_per_address: int = Field(120, description=(
        "Requests per minute without a login session from one address; more answer 429 / 未登录请求每分钟上限"))
    password_checks_at_once: int = Field(2, description=(
        "Password (argon2, 64 MiB each) checks running at once; others wait, then are told the server is busy "
        "/ 同时进行的密码校验数"))
    unknown_source_delay_seconds: float = Field(2.0, description=(
        "Longest delay before answering a failed login from an address the account never used, once the "
        "account fails often (a delay, not a lock) / 陌生地址失败登录的最长延迟(秒)"))
    review_unused_days: int = Field(90, description=(
        "`custody users review` and /audit/accounts list accounts not used for this many days "
        "/ 账号审查:超过此天数未使用"))
    production: bool = Field(False, description=(
        "Production mode: cookies always Secure; `custody serve` refuses plain HTTP unless behind_tls_proxy "
        "/ 生产模式:须 HTTPS"))
    behind_tls_proxy: bool = Field(False, description=(
        "A TLS-terminating reverse proxy in front: X-Forwarded-For/-Proto are believed from trusted_proxies "
        "/ 位于 TLS 反向代理之后"))
    trusted_proxies: list[str] = Field(default_factory=lambda: ["127.0.0.1"], description=(
        "Addresses of the reverse proxy whose forwarded headers count / 受信任的代理地址"))
    certfile: Path | None = Field(None, json_schema_extra={"example": '"var/tls/cert.pem"'}, description=(
        "TLS certificate (PEM) for `custody serve` to speak HTTPS itself (or --certfile) / HTTPS 证书"))
    keyfile: Path | None = Field(None, json_schema_extra={"example": '"var/tls/key.pem"'}, description=(
        "TLS private key (PEM) (or --keyfile) / HTTPS 私钥"))
    hsts_seconds: int = Field(31536000, description=(
        "Strict-Transport-Security max-age sent over HTTPS; 0 = none / HSTS 有效期(秒)"))


class FieldUploadSettings(_Section):
    """Field upload from enrolled terminals over tus 1.0 (issue 15, docs/field-upload.md)."""
    upload_expiry_hours: float = Field(
        24.0,
        description='An incomplete upload untouched this long is removed (custody event)')
    max_upload_bytes: int = Field(
        64 * 1024 * 1024 * 1024,
        description='Tus-Max-Size: larger uploads are refused at creation.')


class CustodyLogSettings(_Section):
    """The custody log's anchors (issue 17, docs/custody-log.md): the station's Ed25519 key signs
    every event and every checkpoint written to the store under `custody-log/`."""
    key_file: Path = Field(Path("var/station-key.pem"), description=(
        "This station's Ed25519 private key (PEM); created on first use with mode 0600. Keep it secret, "
        "back it up offline / 本站签名私钥(首次使用时生成,权限 0600)."))
    trusted_keys: list[str] = Field(default_factory=list, description=(
        "Other stations' public keys that `custody verify` trusts: paths to .pub files or base64 keys "
        "(`custody log key` prints one) / 受信任的其他站点公钥."))
    trust_store_keys: bool = Field(True, description=(
        "Also trust the keys stations published write-once under custody-log/keys/ in the store; false = "
        "only this station's and trusted_keys / 是否信任存储中发布的公钥."))
    checkpoint_minutes: float = Field(15.0, description=(
        "The daemon anchors the custody log (a signed checkpoint in the store) at least this often while "
        "events are written, and after every dock; 0 = only after docks / 检查点间隔(分钟)."))
    checkpoint_lock_days: int = Field(3650, description=(
        "Object Lock retain-until of checkpoints and published keys, in days / 检查点锁定天数."))
    backup_lock_days: int = Field(400, description=(
        "Object Lock retain-until of catalog backups (`custody backup`), in days / 目录库备份锁定天数."))


class Settings(_Section):
    station: StationSettings = Field(default_factory=StationSettings)
    fixity: FixitySettings = Field(
        default_factory=FixitySettings,
        description="Scheduled fixity: stored objects re-verified on a rolling schedule (docs/stations.md) "
                    "/ 定期校验")
    catalog: CatalogSettings = Field(default_factory=CatalogSettings)
    storage: StorageSettings = Field(default_factory=StorageSettings)
    indexer: IndexerSettings = Field(default_factory=IndexerSettings)
    linking: LinkingSettings = Field(default_factory=LinkingSettings)
    reports: ReportSettings = Field(default_factory=ReportSettings)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
    web: WebSettings = Field(default_factory=WebSettings)
    field_upload: FieldUploadSettings = Field(default_factory=FieldUploadSettings)
    custody_log: CustodyLogSettings = Field(default_factory=CustodyLogSettings)

    # Where the file was read from; relative config paths (profiles, rules) use it.
    config_path: Path | None = None
    home: Path = Field(default_factory=Path.cwd)

    def path(self, p: Path) -> Path:
        """Resolve a configured path against CUSTODY_HOME."""
        return p if p.is_absolute() else (self.home / p)

    @property
    def config_dir(self) -> Path:
        return self.config_path.parent if self.config_path else SHIPPED_CONFIG_DIR

    @property
    def profiles_dir(self) -> Path:
        p = self.station.profiles_dir
        if p is None:
            # beside the config file when it brings its own, else the shipped profiles
            own = self.config_dir / "devices"
            return own if own.is_dir() else SHIPPED_CONFIG_DIR / "devices"
        return p if p.is_absolute() else self.config_dir / p

    @property
    def retention_rules_file(self) -> Path:
        p = self.retention.rules_file
        if p is None:
            own = self.config_dir / "retention.toml"
            return own if own.is_file() else SHIPPED_CONFIG_DIR / "retention.toml"
        return p if p.is_absolute() else self.config_dir / p

    @property
    def tz(self) -> timezone:
        return parse_utc_offset(self.station.timezone)

    @property
    def catalog_url(self) -> str:
        return catalog_driver_url(resolve_sqlite_url(self.catalog.url, self.home))

    @property
    def storage_url(self) -> str:
        url = self.storage.url
        if url.startswith("file://"):
            p = Path(url[len("file://"):])
            return "file://" + str(self.path(p))
        return url


def parse_utc_offset(text: str) -> timezone:
    """'+08:00' -> timezone(+8h).  Named zones are refused: offsets are explicit."""
    t = text.strip()
    if t in ("Z", "UTC", "+00:00"):
        return timezone.utc
    try:
        sign = -1 if t[0] == "-" else 1
        hh, mm = t.lstrip("+-").split(":")
        return timezone(sign * timedelta(hours=int(hh), minutes=int(mm)))
    except (ValueError, IndexError) as e:
        raise ConfigError(f"time zone {text!r} is not a UTC offset like +08:00") from e


# The PostgreSQL driver Custody ships (pyproject: psycopg2-binary).  `postgresql://` and
# `postgres://` (libpq's spelling, what pg_dump, psql and most tools take) name no driver, and
# SQLAlchemy 2.1 would then load psycopg 3, which is not installed: they mean this one.
PG_DRIVER = "postgresql+psycopg2://"


def catalog_driver_url(url: str) -> str:
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return PG_DRIVER + url[len(prefix):]
    return url


def resolve_sqlite_url(url: str, home: Path) -> str:
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith("sqlite:////") and url != "sqlite:///:memory:":
        return prefix + str((home / url[len(prefix):]).resolve())
    return url


def load_settings(config_file: str | os.PathLike[str] | None = None) -> Settings:
    path = Path(config_file) if config_file else None
    if path is None and os.environ.get("CUSTODY_CONFIG"):
        path = Path(os.environ["CUSTODY_CONFIG"])
    if path is None:
        path = SHIPPED_CONFIG
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise ConfigError(f"config file {path} not found") from e
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config file {path}: {e}") from e
    home = Path(os.environ.get("CUSTODY_HOME") or Path.cwd())
    try:
        settings = Settings.model_validate({**data, "config_path": path.resolve(), "home": home})
    except ValidationError as e:
        raise ConfigError(f"config file {path}: {e}") from e
    if os.environ.get("CUSTODY_CATALOG_URL"):
        settings.catalog.url = os.environ["CUSTODY_CATALOG_URL"]
    if os.environ.get("CUSTODY_STORAGE_URL"):
        settings.storage.url = os.environ["CUSTODY_STORAGE_URL"]
    if not settings.storage.endpoint_url:
        settings.storage.endpoint_url = (
            os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None
        )
    return settings
