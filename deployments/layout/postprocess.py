"""Layout post-processing, rule for rule as PaddleX ``LayoutAnalysisProcess.apply``.

Input: raw detections ``[cls, score, x1, y1, x2, y2(, order(, votes))]`` in page pixels, and for a
mask model (PP-DocLayoutV3) one mask per row. Output: :class:`LayoutBox` list in reading order.
Steps: per-class threshold, layout NMS, large-image filter, merge modes, reading-order sort,
polygons from the masks (``layout_shape_mode``), unclip, clamp + drop degenerate boxes, order
numbering. Each step selects rows by index, so the masks follow the rows exactly. The numpy calls
(argsort flavours, stacking order) mirror PaddleX so that ties resolve identically; the
differential tests hold us to that.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from deployments.datamodel import LayoutBox
from deployments.labels import PP_DOCLAYOUT_V2_LABELS, SKIP_ORDER_LABELS
from deployments.layout.backends import INPUT_SIZE, Raw, RawLayout
from deployments.layout.options import LayoutOptions
from deployments.layout.polygons import polygons_from_masks

IOU_SAME_CLASS = 0.6
IOU_OTHER_CLASS = 0.98
CONTAINED_RATIO = 0.9


def threshold_index(boxes: np.ndarray, threshold) -> np.ndarray:
    """Rows scoring above their class threshold; a dict threshold groups the rows by class id."""
    if not isinstance(threshold, dict):
        return np.flatnonzero((boxes[:, 1] > float(threshold)) & (boxes[:, 0] > -1))
    kept = []
    for cat_id in np.unique(boxes[:, 0]):
        rows = np.flatnonzero(boxes[:, 0] == cat_id)
        limit = threshold.get(int(cat_id), 0.5)
        kept.append(rows[(boxes[rows, 1] > limit) & (boxes[rows, 0] > -1)])
    return np.concatenate(kept) if kept else np.zeros(0, dtype=int)


def _iou_plus_one(a: np.ndarray, b: np.ndarray) -> float:
    # PaddleX's detection IoU counts pixels inclusively (+1).
    iw = max(0, min(a[2], b[2]) - max(a[0], b[0]) + 1)
    ih = max(0, min(a[3], b[3]) - max(a[1], b[1]) + 1)
    inter = iw * ih
    area_a = (a[2] - a[0] + 1) * (a[3] - a[1] + 1)
    area_b = (b[2] - b[0] + 1) * (b[3] - b[1] + 1)
    with np.errstate(invalid="ignore", divide="ignore"):  # inverted boxes give NaN: never suppress
        return inter / float(area_a + area_b - inter)


def nms(boxes: np.ndarray, iou_same=IOU_SAME_CLASS, iou_diff=IOU_OTHER_CLASS) -> list[int]:
    """Greedy NMS by score with a per-pair threshold (same class vs different class)."""
    indices = list(np.argsort(boxes[:, 1])[::-1])
    selected = []
    while indices:
        current, indices = indices[0], indices[1:]
        selected.append(current)
        cur = boxes[current]
        indices = [
            i for i in indices
            if _iou_plus_one(cur[2:6], boxes[i][2:6])
            < (iou_same if cur[0] == boxes[i][0] else iou_diff)
        ]
    return selected


def large_image_index(boxes: np.ndarray, img_size, labels: Sequence[str]) -> np.ndarray:
    """Rows left after dropping ``image`` boxes that cover most of the page (> 82% landscape,
    > 93% otherwise); all rows when that would leave none."""
    everything = np.arange(len(boxes))
    if len(boxes) <= 1 or "image" not in labels:
        return everything
    width, height = img_size
    area_thres = 0.82 if width > height else 0.93
    image_index = labels.index("image")
    keep = []
    for i, box in enumerate(boxes):
        if box[0] == image_index:
            x1, y1 = max(0, box[2]), max(0, box[3])
            x2, y2 = min(width, box[4]), min(height, box[5])
            if (x2 - x1) * (y2 - y1) > area_thres * width * height:
                continue
        keep.append(i)
    return np.array(keep) if keep else everything


def _is_contained(inner: np.ndarray, outer: np.ndarray) -> bool:
    area = (inner[4] - inner[2]) * (inner[5] - inner[3])
    iw = max(0, min(inner[4], outer[4]) - max(inner[2], outer[2]))
    ih = max(0, min(inner[5], outer[5]) - max(inner[3], outer[3]))
    return (iw * ih / area if area > 0 else 0) >= CONTAINED_RATIO


def containment(boxes, formula_index=None, category=None, mode=None):
    """(contains_other, contained_by_other) flags, optionally for one category and mode."""
    n = len(boxes)
    contains, contained = np.zeros(n, dtype=int), np.zeros(n, dtype=int)
    for i in range(n):
        for j in range(n):
            if i == j:
                continue
            if formula_index is not None and boxes[i][0] == formula_index and boxes[j][0] != formula_index:
                continue
            relevant = category is None or mode is None or (
                (mode == "large" and boxes[j][0] == category)
                or (mode == "small" and boxes[i][0] == category)
            )
            if relevant and _is_contained(boxes[i], boxes[j]):
                contained[i], contains[j] = 1, 1
    return contains, contained


def merge_mode_index(boxes: np.ndarray, modes, labels: Sequence[str]) -> np.ndarray:
    """Rows kept by the merge modes: 'large' removes boxes inside another (of the class), 'small'
    keeps the inner ones, 'union' keeps all."""
    keep = np.ones(len(boxes), dtype=bool)
    if not modes or modes == "union":
        return np.flatnonzero(keep)
    formula_index = labels.index("formula") if "formula" in labels else None
    for category, mode in ({None: modes} if isinstance(modes, str) else modes).items():
        if mode == "union":
            continue
        contains, contained = containment(boxes[:, :6], formula_index, category, mode if category is not None else None)
        keep &= contained == 0 if mode == "large" else (contains == 0) | (contained == 1)
    return np.flatnonzero(keep)


def reading_order_index(boxes: np.ndarray) -> np.ndarray:
    """Rows sorted by the model's order column (8 columns: order, then most votes first)."""
    if boxes.shape[1] == 8:
        return np.lexsort((-boxes[:, 7], boxes[:, 6]))
    if boxes.shape[1] == 7:
        return np.argsort(boxes[:, 6])
    return np.arange(len(boxes))


def unclip(boxes: np.ndarray, ratio) -> np.ndarray:
    """Scale boxes around their centres by (width ratio, height ratio), globally or per class."""
    if not ratio:
        return boxes
    if isinstance(ratio, dict):
        out = []
        for box in boxes:
            pair = ratio.get(int(box[0])) if float(box[0]).is_integer() else None
            out.append(_scale(box, pair) if pair is not None else box)
        return np.array(out)
    pair = (ratio, ratio) if isinstance(ratio, (int, float)) else tuple(ratio)
    return np.array([_scale(box, pair) for box in boxes]).reshape(-1, 6)


def _scale(box, pair):
    cls_id, score, x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    cx, cy = x1 + w / 2, y1 + h / 2
    nw, nh = w * pair[0], h * pair[1]
    return [cls_id, score, cx - nw / 2, cy - nh / 2, cx + nw / 2, cy + nh / 2]


def to_layout_boxes(boxes: np.ndarray, img_size, labels: Sequence[str],
                    polygons: Optional[list[np.ndarray]] = None) -> list[LayoutBox]:
    """Clamp to the page, truncate to int, drop empty boxes, number the reading order."""
    width, height = img_size
    out, order = [], 1
    for i, box in enumerate(boxes):
        x1, y1 = int(max(0, box[2])), int(max(0, box[3]))
        x2, y2 = int(min(width, box[4])), int(min(height, box[5]))
        if x2 <= x1 or y2 <= y1:
            continue
        label = labels[int(box[0])]
        skip = label in SKIP_ORDER_LABELS
        polygon = None if polygons is None else polygons[i]
        out.append(LayoutBox(int(box[0]), label, float(box[1]), (x1, y1, x2, y2), None if skip else order, polygon))
        order += 0 if skip else 1
    return out


def postprocess_layout(
    raw: Raw,
    img_size: tuple[int, int],
    options: Optional[LayoutOptions] = None,
    labels: Sequence[str] = PP_DOCLAYOUT_V2_LABELS,
) -> list[LayoutBox]:
    """Turn raw detections of one page (``img_size`` = (width, height)) into layout boxes; a mask
    model's boxes carry polygons unless ``options.shape_mode`` is ``rect``."""
    options = options or LayoutOptions()
    shape_mode = options.shape_mode
    rows, masks = (raw.rows, raw.masks) if isinstance(raw, RawLayout) else (raw, None)
    boxes = np.asarray(rows, dtype=np.float64)
    if boxes.size == 0:
        return []
    boxes = boxes.reshape(len(boxes), -1).copy()
    boxes[:, 2:6] = np.round(boxes[:, 2:6]).astype(int)
    masks = None if masks is None or shape_mode == "rect" else np.asarray(masks)
    steps = [lambda b: threshold_index(b, options.threshold)]
    if options.nms:
        steps.append(lambda b: np.array(nms(b[:, :6]), dtype=int))
    steps += [lambda b: large_image_index(b, img_size, labels),
              lambda b: merge_mode_index(b, options.merge_bboxes_mode, labels)]
    for step in steps:
        index = step(boxes)
        boxes = boxes[index].reshape(-1, boxes.shape[1])
        masks = None if masks is None else masks[index]
    if boxes.size == 0:
        return []
    index = reading_order_index(boxes)
    boxes = boxes[index][:, :6]
    polygons = None
    if masks is not None:
        scale_ratio = [INPUT_SIZE / side for side in img_size]
        polygons = polygons_from_masks(boxes, masks[index], scale_ratio, shape_mode)
    boxes = unclip(boxes, options.unclip_ratio)
    return to_layout_boxes(boxes, img_size, labels, polygons)
