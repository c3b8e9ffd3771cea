"""Error types a caller can act on.  Every error carries a plain reason."""
from __future__ import annotations


class CustodyError(Exception):
    """Base of every error the tool raises on purpose."""

    exit_code = 1


class ConfigError(CustodyError):
    exit_code = 2


class NotFound(CustodyError):
    exit_code = 3


class PermissionDenied(CustodyError):
    exit_code = 4


class CatalogUnavailable(CustodyError):
    """The catalog database did not answer."""

    exit_code = 5


class StorageUnavailable(CustodyError):
    """The object store did not answer; work stays in the spool and is retried."""


class StorageIntegrityError(CustodyError):
    """The store holds bytes whose checksum is not the evidence hash."""


class SourceMismatch(StorageIntegrityError):
    """The file handed to the store (the spool copy) no longer hashes to the evidence hash
    taken from the device: it was damaged after the copy.  Nothing was stored; copy again."""


class SpoolFull(CustodyError):
    """The station spool has less free space than the configured floor."""


class DeviceGone(CustodyError):
    """The device volume disappeared (cable pulled) during an offload."""


class RefusedEntry(CustodyError):
    """An entry on a volume that must never be read (symlink, device file, escape)."""


class ObjectLocked(CustodyError):
    """The store refused to delete or overwrite an object under retention or legal hold."""
