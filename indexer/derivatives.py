"""Keyframe images, thumbnails and contact sheets, written to the object store.

Derivative keys carry a digest of their own bytes, so a re-index that yields a
different picture writes a new object instead of colliding with a write-once one,
and an identical re-index reuses what is there.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import cv2
import numpy as np

from indexer.keyframes import Frame, contact_sheet, jpeg, resize_to_width
from storage.base import ObjectStore, derived_key


@dataclass
class StoredDerivative:
    kind: str  # keyframe|thumbnail|contact_sheet
    offset_seconds: float | None
    storage_key: str
    width: int
    height: int
    score: float | None = None
    reason: str | None = None


def _put(store: ObjectStore, sha256: str, prefix: str, img: np.ndarray, quality: int) -> tuple[str, int, int]:
    data = jpeg(img, quality)
    name = f"{prefix}-{hashlib.sha256(data).hexdigest()[:12]}.jpg"
    key = derived_key(sha256, name)
    store.put_bytes(key, data, content_type="image/jpeg", metadata={"derived-from": sha256})
    return key, img.shape[1], img.shape[0]


def store_keyframes(store: ObjectStore, sha256: str, frames: list[Frame], keyframe_width: int,
                    thumb_width: int) -> list[StoredDerivative]:
    out: list[StoredDerivative] = []
    thumbs: list[tuple[float, str, np.ndarray]] = []
    for f in frames:
        ms = int(round(f.t * 1000))
        big = resize_to_width(f.image, keyframe_width)
        key, w, h = _put(store, sha256, f"kf-{ms:09d}", big, 88)
        out.append(StoredDerivative("keyframe", round(f.t, 3), key, w, h, round(f.sharpness, 1), f.reason))
        small = resize_to_width(f.image, thumb_width)
        key, w, h = _put(store, sha256, f"th-{ms:09d}", small, 80)
        out.append(StoredDerivative("thumbnail", round(f.t, 3), key, w, h, round(f.sharpness, 1), f.reason))
        thumbs.append((f.t, f.reason, small))
    if thumbs:
        sheet = contact_sheet(thumbs)
        key, w, h = _put(store, sha256, "contact-sheet", sheet, 82)
        out.append(StoredDerivative("contact_sheet", None, key, w, h, None, f"{len(thumbs)} keyframes"))
    return out


def store_photo_thumbnail(store: ObjectStore, sha256: str, path: str, thumb_width: int) -> list[StoredDerivative]:
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None:
        return []
    key, w, h = _put(store, sha256, "th-photo", resize_to_width(img, thumb_width), 80)
    return [StoredDerivative("thumbnail", None, key, w, h, None, "photo")]
