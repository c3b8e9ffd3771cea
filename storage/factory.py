from __future__ import annotations

from pathlib import Path

from core.errors import ConfigError
from core.settings import Settings
from storage.base import ObjectStore


def open_store(settings: Settings) -> ObjectStore:
    url = settings.storage_url
    if url.startswith("file://"):
        from storage.local import LocalStore  # deferred: only the store in use is loaded

        return LocalStore(Path(url[len("file://"):]))
    if url.startswith("s3://"):
        from storage.s3 import S3Store  # deferred: boto3 takes ~0.3 s to import; a local store never needs it

        return S3Store(url, settings.storage)
    raise ConfigError(f"storage URL {url!r}: use file://PATH or s3://BUCKET")
