"""Keyframe images, thumbnails and contact sheets, written to the object store.

Derivative keys carry a digest of their own bytes, so a re-index that yields a
different picture writes a new object instead of colliding with a write-once one,
and an identical re-index reuses what is there.
"""
from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from core.lazy import lazy
from indexer.keyframes import Frame, contact_sheet, jpeg, resize_to_width
from storage.base import ObjectStore, derived_key

if TYPE_CHECKING:
    import cv2
    import numpy as np
else:  # imported on first use: the CLI loads this module for light commands too (issue 14)
    cv2, np = lazy("cv2"), lazy("numpy")


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


PUT_THREADS = 4  # JPEG encoding releases the GIL and puts wait on the store: overlap them


def store_keyframes(store: ObjectStore, sha256: str, frames: list[Frame], keyframe_width: int,
                    thumb_width: int) -> list[StoredDerivative]:
    """A keyframe image and a thumbnail per frame, and one contact sheet, in time order."""
    if not frames:
        return []
    thumbs = [(f.t, f.reason, resize_to_width(f.image, thumb_width)) for f in frames]
    jobs = []
    for f, (_, _, small) in zip(frames, thumbs):
        ms = int(round(f.t * 1000))
        jobs.append(("keyframe", f, f"kf-{ms:09d}", resize_to_width(f.image, keyframe_width), 88))
        jobs.append(("thumbnail", f, f"th-{ms:09d}", small, 80))
    jobs.append(("contact_sheet", None, "contact-sheet", contact_sheet(thumbs), 82))
    with ThreadPoolExecutor(PUT_THREADS) as pool:
        keys = list(pool.map(lambda j: _put(store, sha256, j[2], j[3], j[4]), jobs))
    out = []
    for (kind, f, _, _, _), (key, w, h) in zip(jobs, keys):
        if f is None:
            out.append(StoredDerivative(kind, None, key, w, h, None, f"{len(frames)} keyframes"))
        else:
            out.append(StoredDerivative(kind, round(f.t, 3), key, w, h, round(f.sharpness, 1), f.reason))
    return out


def store_photo_thumbnail(store: ObjectStore, sha256: str, path: str, thumb_width: int) -> list[StoredDerivative]:
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None:
        return []
    key, w, h = _put(store, sha256, "th-photo", resize_to_width(img, thumb_width), 80)
    return [StoredDerivative("thumbnail", None, key, w, h, None, "photo")]
