"""Object stores: a local directory (embedded default) and any S3-compatible store."""
from storage.base import ObjectInfo, ObjectStore, StoredObject, derived_key, media_key
from storage.factory import open_store

__all__ = ["ObjectInfo", "ObjectStore", "StoredObject", "derived_key", "media_key", "open_store"]
