"""The station's Ed25519 key: it signs every custody event and every checkpoint.

The private key lives in a file on the station (`[custody_log].key_file`, created on first
use with mode 0600), never in the catalog: someone who can rewrite the database cannot sign
what they write.  Public keys are identified by `key_id` (the first 16 hex digits of the
SHA-256 of the raw 32-byte key).  Which public keys `custody verify` trusts: this station's
own, those listed in `[custody_log].trusted_keys`, and (when `trust_store_keys`) those the
stations published write-once under `custody-log/keys/` in the evidence store.
"""
from __future__ import annotations

import base64
import hashlib
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from core.errors import ConfigError
from core.settings import Settings

# `cryptography` is imported where a key is loaded, made or checked, not here: every command
# that opens the catalog imports this module, and the read-only ones never sign (issue 14,
# start-up).
if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

log = logging.getLogger("custody.key")


def raw_public(pub: Ed25519PublicKey) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id_of(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()[:16]


def public_from_text(text: str) -> bytes:
    """A public key as base64 of the raw 32 bytes (what `custody log key` prints and .pub files hold)."""
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except ValueError as e:
        raise ConfigError(f"public key {text.strip()[:60]!r} is not base64") from e
    if len(raw) != 32:
        raise ConfigError(f"public key {text.strip()[:60]!r} is not a 32-byte Ed25519 key")
    return raw


class StationKey:
    """The signing half, loaded (or created) lazily from the key file."""

    def __init__(self, path: Path, station: str) -> None:
        self.path = path
        self.station = station
        self._key: Ed25519PrivateKey | None = None
        self._lock = threading.Lock()
        # Called once, before the first signature of this process: the App publishes the public
        # key in the store there, so other stations' `custody verify` can trust what it signs.
        self.on_first_use: Callable[[], None] | None = None
        self._announced = False

    def _load(self) -> Ed25519PrivateKey:
        with self._lock:
            if self._key is None:
                self._key = load_or_create(self.path)
            return self._key

    @property
    def public_raw(self) -> bytes:
        return raw_public(self._load().public_key())

    @property
    def key_id(self) -> str:
        return key_id_of(self.public_raw)

    @property
    def public_b64(self) -> str:
        return base64.b64encode(self.public_raw).decode()

    def sign(self, message: bytes) -> str:
        key = self._load()
        if not self._announced:
            self._announced = True
            if self.on_first_use is not None:
                try:
                    self.on_first_use()
                except Exception as e:  # noqa: BLE001 - the store may be down; checkpoints publish it later
                    log.warning("station key %s not published yet: %s", self.key_id, e)
        return base64.b64encode(key.sign(message)).decode()


def load_or_create(path: Path) -> Ed25519PrivateKey:
    """Read the PEM private key; create it (mode 0600, never replacing a file) when absent."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    try:
        data = path.read_bytes()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process of this station created it first
            return load_or_create(path)
        try:
            os.write(fd, pem)
            os.fsync(fd)
        finally:
            os.close(fd)
        log.warning("created the station's custody-log signing key %s (key id %s)", path,
                    key_id_of(raw_public(key.public_key())))
        return key
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except ValueError as e:
        raise ConfigError(f"custody-log key file {path} is not a PEM private key: {e}") from e
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"custody-log key file {path} does not hold an Ed25519 key")
    return key


def station_key(settings: Settings) -> StationKey:
    return StationKey(settings.path(settings.custody_log.key_file), settings.station.name)


@dataclass
class Keyring:
    """Public keys trusted to sign events and checkpoints: key_id -> (raw key, where it came from)."""

    keys: dict[str, tuple[bytes, str]] = field(default_factory=dict)

    def add(self, raw: bytes, source: str) -> str:
        kid = key_id_of(raw)
        self.keys.setdefault(kid, (raw, source))
        return kid

    def verify(self, key_id: str, message: bytes, sig_b64: str) -> str | None:
        """None when `sig_b64` is a valid signature of `message` by trusted key `key_id`; else why not."""
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        entry = self.keys.get(key_id)
        if entry is None:
            return f"signed by key {key_id}, which is not a trusted station key"
        try:
            sig = base64.b64decode(sig_b64, validate=True)
            Ed25519PublicKey.from_public_bytes(entry[0]).verify(sig, message)
        except (InvalidSignature, ValueError):
            return f"signature by key {key_id} does not match"
        return None


def configured_keyring(settings: Settings, own: StationKey | None) -> Keyring:
    """This station's key and `[custody_log].trusted_keys` (paths to .pub files or base64 keys)."""
    ring = Keyring()
    if own is not None:
        try:
            ring.add(own.public_raw, f"this station ({settings.station.name})")
        except (OSError, ConfigError) as e:
            log.error("station key unavailable: %s", e)
    for item in settings.custody_log.trusted_keys:
        p = settings.path(Path(item))
        if item.endswith(".pub") or p.is_file():
            if not p.is_file():
                raise ConfigError(f"trusted key file {p} not found")
            ring.add(public_from_text(p.read_text().split()[0]), f"trusted key file {p}")
        else:
            ring.add(public_from_text(item), "trusted_keys setting")
    return ring
