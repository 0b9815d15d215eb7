"""PP-DocLayoutV3 post-processing (boxes + masks → boxes with polygons) against PaddleX 3.7.2's
``LayoutAnalysisProcess.apply`` + ``update_order_index``, in every ``layout_shape_mode``, on
hundreds of generated pages: masks that are rectangles, rotated rectangles, L-shapes, blobs,
empty or spilling past their box."""

from __future__ import annotations

import random

import cv2
import numpy as np
import pytest
from devtools.official import SKIP_ORDER_LABELS, official_layout, update_order_index

from deployments.labels import PP_DOCLAYOUT_V2_LABELS
from deployments.layout.backends import RawLayout
from deployments.layout.options import LayoutOptions
from deployments.layout.postprocess import postprocess_layout
from deployments.pipelines import PIPELINES

pytestmark = pytest.mark.differential
MASK = 200  # V3's masks: a quarter of the 800 x 800 input


def _mask(rng: random.Random, box, width: int, height: int) -> np.ndarray:
    """One row's 200 x 200 mask, drawn in the model's input frame around the box."""
    sx, sy = MASK / width, MASK / height
    x1, y1, x2, y2 = box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy
    mask = np.zeros((MASK, MASK), np.uint8)
    kind = rng.choice(["rect", "rotated", "L", "blob", "empty", "spill", "rect"])
    cx, cy, w, h = (x1 + x2) / 2, (y1 + y2) / 2, abs(x2 - x1), abs(y2 - y1)
    if kind == "rect":
        cv2.rectangle(mask, (int(x1), int(y1)), (int(x2), int(y2)), 1, -1)
    elif kind == "rotated":
        pts = cv2.boxPoints(((cx, cy), (w * 0.9, h * 0.8), rng.uniform(-20, 20)))
        cv2.fillPoly(mask, [pts.astype(np.int32)], 1)
    elif kind == "L":
        cv2.rectangle(mask, (int(x1), int(y1)), (int(cx), int(y2)), 1, -1)
        cv2.rectangle(mask, (int(x1), int(cy)), (int(x2), int(y2)), 1, -1)
    elif kind == "blob":
        for _ in range(rng.randint(1, 4)):
            cv2.ellipse(mask, (int(cx + rng.uniform(-w, w) / 4), int(cy + rng.uniform(-h, h) / 4)),
                        (max(1, int(w / rng.uniform(2, 5))), max(1, int(h / rng.uniform(2, 5)))),
                        rng.uniform(0, 180), 0, 360, 1, -1)
    elif kind == "spill":
        cv2.rectangle(mask, (int(x1 - w / 4), int(y1 - h / 4)), (int(x2 + w / 4), int(y2)), 1, -1)
    return mask


def _page(rng: random.Random, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    n = rng.randint(1, 30)
    order = list(range(1, n + 1))
    rng.shuffle(order)
    rows, masks = [], []
    for k in range(n):
        x1, y1 = rng.uniform(-10, width * 0.9), rng.uniform(-10, height * 0.9)
        x2, y2 = x1 + rng.uniform(2, width * 0.6), y1 + rng.uniform(2, height * 0.4)
        if rng.random() < 0.15 and rows:  # near-duplicates exercise NMS and containment
            base = rows[rng.randrange(len(rows))]
            x1, y1, x2, y2 = (v + rng.uniform(-4, 4) for v in base[2:6])
        cls = rng.choice([14, 22, 22, 17, 21, 5, 15, 3, 6, rng.randrange(25)])
        rows.append([cls, round(rng.uniform(0.2, 1.0), 3), x1, y1, x2, y2, order[k]])
        masks.append(_mask(rng, (x1, y1, x2, y2), width, height))
    return np.array(rows, dtype=np.float64), np.stack(masks)


def _official(raw, masks, size, opts: LayoutOptions):
    unclip = opts.unclip_ratio
    unclip = {k: list(v) for k, v in unclip.items()} if isinstance(unclip, dict) else unclip
    out = official_layout(PP_DOCLAYOUT_V2_LABELS).apply(
        raw.copy(), size, opts.threshold, opts.nms, unclip, opts.merge_bboxes_mode, masks=masks.copy(),
        layout_shape_mode=opts.shape_mode)
    out = update_order_index(list(out), SKIP_ORDER_LABELS) if len(out) else []
    for box in out:
        if "polygon_points" in box:
            box["polygon_points"] = np.asarray(box["polygon_points"]).tolist()
    return out


@pytest.mark.parametrize("mode", ["auto", "poly", "quad", "rect"])
@pytest.mark.parametrize("seed", range(80))
def test_v3_boxes_and_polygons_match_official(seed, mode):
    rng = random.Random(seed * 7 + len(mode))
    width, height = rng.choice([(600, 800), (1191, 1684), (1684, 1191), (300, 300)])
    raw, masks = _page(rng, width, height)
    defaults = PIPELINES["v1.6"].layout_options
    opts = defaults.model_copy(update={
        "shape_mode": mode,
        "unclip_ratio": rng.choice([(1.0, 1.0), (1.0, 1.0), 1.1, {22: (1.1, 1.2)}]),
        "threshold": rng.choice([defaults.threshold, 0.5, {22: 0.6, 14: 0.2}]),
        "merge_bboxes_mode": rng.choice([defaults.merge_bboxes_mode, "large", "small", "union"]),
        "nms": rng.random() < 0.8,
    })
    ours = postprocess_layout(RawLayout(raw, masks), (width, height), opts, PP_DOCLAYOUT_V2_LABELS)
    assert [b.to_json() for b in ours] == _official(raw, masks, (width, height), opts)
    if mode == "rect":
        assert all(b.polygon_points is None for b in ours)


def test_generated_pages_give_every_polygon_shape():
    """The generator is worth its cases: auto mode yields rectangles, quads and free polygons."""
    seen = set()
    for seed in range(80):
        rng = random.Random(seed * 7 + 4)
        width, height = rng.choice([(600, 800), (1191, 1684), (1684, 1191), (300, 300)])
        raw, masks = _page(rng, width, height)
        for box in postprocess_layout(RawLayout(raw, masks), (width, height), PIPELINES["v1.6"].layout_options):
            pts = box.polygon_points
            x1, y1, x2, y2 = box.coordinate
            is_rect = len(pts) == 4 and sorted({tuple(p) for p in pts.tolist()}) == sorted(
                {(x1, y1), (x2, y1), (x2, y2), (x1, y2)})
            seen.add("rect" if is_rect else "quad" if len(pts) == 4 else "poly")
    assert seen == {"rect", "quad", "poly"}
