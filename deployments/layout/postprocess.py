"""Layout post-processing, rule for rule as PaddleX ``LayoutAnalysisProcess.apply``.

Input: raw detections ``[cls, score, x1, y1, x2, y2(, order(, votes))]`` in page pixels.
Output: :class:`LayoutBox` list in reading order. Steps: per-class threshold, layout NMS,
large-image filter, merge modes, reading-order sort, unclip, clamp + drop degenerate boxes,
order numbering. The numpy calls (argsort flavours, stacking order) mirror PaddleX so that ties
resolve identically; the differential tests hold us to that.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from deployments.datamodel import LayoutBox
from deployments.labels import PP_DOCLAYOUT_V2_LABELS, SKIP_ORDER_LABELS
from deployments.layout.options import LayoutOptions

IOU_SAME_CLASS = 0.6
IOU_OTHER_CLASS = 0.98
CONTAINED_RATIO = 0.9


def apply_threshold(boxes: np.ndarray, threshold) -> np.ndarray:
    """Keep boxes scoring above their class threshold (dict threshold groups by class id)."""
    if not isinstance(threshold, dict):
        return boxes[(boxes[:, 1] > float(threshold)) & (boxes[:, 0] > -1), :]
    kept = []
    for cat_id in np.unique(boxes[:, 0]):
        cat = boxes[boxes[:, 0] == cat_id]
        limit = threshold.get(int(cat_id), 0.5)
        kept.append(cat[(cat[:, 1] > limit) & (cat[:, 0] > -1)])
    return np.vstack(kept) if kept else boxes[:0]


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


def filter_large_images(boxes: np.ndarray, img_size, labels: Sequence[str]) -> np.ndarray:
    """Drop ``image`` boxes covering most of the page (> 82% landscape, > 93% otherwise)."""
    if len(boxes) <= 1 or "image" not in labels:
        return boxes
    width, height = img_size
    area_thres = 0.82 if width > height else 0.93
    image_index = labels.index("image")
    keep = []
    for box in boxes:
        if box[0] == image_index:
            x1, y1 = max(0, box[2]), max(0, box[3])
            x2, y2 = min(width, box[4]), min(height, box[5])
            if (x2 - x1) * (y2 - y1) > area_thres * width * height:
                continue
        keep.append(box)
    return np.array(keep) if keep else boxes


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


def apply_merge_modes(boxes: np.ndarray, modes, labels: Sequence[str]) -> np.ndarray:
    """'large' removes boxes inside another (of the class), 'small' keeps the inner ones."""
    if not modes:
        return boxes
    formula_index = labels.index("formula") if "formula" in labels else None
    if isinstance(modes, str):
        if modes == "union":
            return boxes
        contains, contained = containment(boxes[:, :6], formula_index)
        keep = contained == 0 if modes == "large" else (contains == 0) | (contained == 1)
        return boxes[keep]
    keep = np.ones(len(boxes), dtype=bool)
    for category, mode in modes.items():
        if mode == "union":
            continue
        contains, contained = containment(boxes[:, :6], formula_index, category, mode)
        keep &= contained == 0 if mode == "large" else (contains == 0) | (contained == 1)
    return boxes[keep]


def sort_by_reading_order(boxes: np.ndarray) -> np.ndarray:
    """Sort by the model's order column (8 columns: order, then most votes first)."""
    if boxes.shape[1] == 8:
        boxes = boxes[np.lexsort((-boxes[:, 7], boxes[:, 6]))][:, :6]
    elif boxes.shape[1] == 7:
        boxes = boxes[np.argsort(boxes[:, 6])][:, :6]
    return boxes


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


def to_layout_boxes(boxes: np.ndarray, img_size, labels: Sequence[str]) -> list[LayoutBox]:
    """Clamp to the page, truncate to int, drop empty boxes, number the reading order."""
    width, height = img_size
    out, order = [], 1
    for box in boxes:
        x1, y1 = int(max(0, box[2])), int(max(0, box[3]))
        x2, y2 = int(min(width, box[4])), int(min(height, box[5]))
        if x2 <= x1 or y2 <= y1:
            continue
        label = labels[int(box[0])]
        skip = label in SKIP_ORDER_LABELS
        out.append(LayoutBox(int(box[0]), label, float(box[1]), (x1, y1, x2, y2), None if skip else order))
        order += 0 if skip else 1
    return out


def postprocess_layout(
    raw: np.ndarray,
    img_size: tuple[int, int],
    options: Optional[LayoutOptions] = None,
    labels: Sequence[str] = PP_DOCLAYOUT_V2_LABELS,
) -> list[LayoutBox]:
    """Turn raw detections of one page (``img_size`` = (width, height)) into layout boxes."""
    options = options or LayoutOptions()
    boxes = np.asarray(raw, dtype=np.float64)
    if boxes.size == 0:
        return []
    boxes = boxes.reshape(len(boxes), -1).copy()
    boxes[:, 2:6] = np.round(boxes[:, 2:6]).astype(int)
    boxes = apply_threshold(boxes, options.threshold)
    if options.nms:
        boxes = np.array(boxes[nms(boxes[:, :6])]).reshape(-1, boxes.shape[1])
    boxes = filter_large_images(boxes, img_size, labels)
    boxes = apply_merge_modes(boxes, options.merge_bboxes_mode, labels)
    if boxes.size == 0:
        return []
    boxes = sort_by_reading_order(boxes)
    boxes = unclip(boxes, options.unclip_ratio)
    return to_layout_boxes(boxes, img_size, labels)
