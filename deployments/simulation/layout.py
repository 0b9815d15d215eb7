"""``layout.backend: simulated``: PP-DocLayoutV2 on a simulated GPU.

Each page's pre-processing runs for real (resize to 800×800, scale to [0, 1], HWC → CHW float32,
as the detector's processor does); the batch then takes ``costs.layout_batch_seconds`` of sleep
(the replica's worker thread waits; no CPU is used). A simulated detector cannot see: the boxes are
one of four page templates (one column; two columns; text with a table; text with formulas), each
with ~15 blocks, chosen by a hash of the page, scaled to the page; a load test cares about their
number and sizes, not their truth. Config: ``layout.simulated_gpu``; ``layout.simulated_faults`` (a
folder) makes the model raise on a blank page (a layout failure on demand) and kill its own process
once on an all-black page (a lost replica on demand).
"""

from __future__ import annotations

import os
import signal
import time
import zlib
from pathlib import Path

import numpy as np

from deployments.labels import PP_DOCLAYOUT_V2_LABELS
from deployments.simulation import profiles as P
from deployments.simulation.costs import layout_batch_seconds

Box = tuple[str, float, float, float, float]  # label, x1, y1, x2, y2 as shares of the page


def _column(x1: float, x2: float, top: float, rows: int, height: float = 0.1, gap: float = 0.02) -> list[Box]:
    return [("text", x1, top + i * (height + gap), x2, top + i * (height + gap) + height) for i in range(rows)]


FRAME: list[Box] = [("header", 0.1, 0.03, 0.9, 0.05), ("doc_title", 0.15, 0.07, 0.85, 0.11),
                    ("footer", 0.1, 0.95, 0.9, 0.97)]
TEMPLATES: list[list[Box]] = [  # 15, 15, 14 and 14 blocks
    FRAME + [("paragraph_title", 0.1, 0.13, 0.5, 0.15)] + _column(0.1, 0.9, 0.17, 11, 0.055, 0.015),
    FRAME + _column(0.08, 0.48, 0.14, 6) + _column(0.52, 0.92, 0.14, 6),
    FRAME + _column(0.1, 0.9, 0.14, 4, 0.07, 0.015) + [("table", 0.1, 0.49, 0.9, 0.77),
                                                       ("figure_title", 0.3, 0.78, 0.7, 0.8)]
    + _column(0.1, 0.9, 0.815, 5, 0.02, 0.007),
    FRAME + _column(0.1, 0.9, 0.14, 4, 0.07, 0.015) + [("display_formula", 0.25, 0.49, 0.75, 0.53),
                                                       ("display_formula", 0.25, 0.55, 0.75, 0.59)]
    + _column(0.1, 0.9, 0.61, 4, 0.07, 0.015) + [("display_formula", 0.25, 0.9, 0.75, 0.935)],
]


class SimulatedLayout:
    labels = PP_DOCLAYOUT_V2_LABELS
    simulated = True

    def __init__(self, config, device: str):
        self.profile_name, self.faults = config.simulated_gpu, config.simulated_faults
        self.profile = P.PROFILES[config.simulated_gpu]

    def predict(self, images: list[np.ndarray], score_floor: float) -> list[np.ndarray]:
        for image in images:
            if self.faults:
                _fault(image, Path(self.faults))
            preprocess(image)
        time.sleep(layout_batch_seconds(self.profile, len(images)))
        return [boxes_for(image) for image in images]


def _fault(image: np.ndarray, folder: Path) -> None:
    if image.min() == 255:
        raise RuntimeError("the simulated layout model fails on a blank page (layout.simulated_faults)")
    if image.max() == 0:
        seen = folder / f"lost-replica-{_page_hash(image):08x}"
        if not seen.exists():
            folder.mkdir(parents=True, exist_ok=True)
            seen.touch()
            os.kill(os.getpid(), signal.SIGKILL)


def _page_hash(image: np.ndarray) -> int:
    return zlib.crc32(np.ascontiguousarray(image[::32, ::32]).tobytes())


def preprocess(image: np.ndarray) -> np.ndarray:
    import cv2

    resized = cv2.resize(image, (P.LAYOUT_INPUT, P.LAYOUT_INPUT), interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray((resized.astype(np.float32) / 255.0).transpose(2, 0, 1))


def boxes_for(image: np.ndarray) -> np.ndarray:
    """Rows ``[cls, score, x1, y1, x2, y2, order]`` of the page's template, in page pixels."""
    height, width = image.shape[:2]
    template = TEMPLATES[_page_hash(image) % len(TEMPLATES)]
    rows = [[PP_DOCLAYOUT_V2_LABELS.index(label), 0.95, x1 * width, y1 * height, x2 * width, y2 * height, order]
            for order, (label, x1, y1, x2, y2) in enumerate(template, 1)]
    return np.asarray(rows, dtype=np.float64)
