"""Layout polygons of a mask model (PP-DocLayoutV3), rule for rule as PaddleX 3.7.2's
``layout_analysis/processors.py`` (``extract_polygon_points_by_masks``, ``mask2polygon``,
``extract_custom_vertices``, ``_normalize_layout_polygon``, ``convert_polygon_to_quad``).

A box's mask is cropped to the box, resized to it, traced (OpenCV contour, Douglas-Peucker),
thinned to its salient vertices, then shaped by ``layout_shape_mode``: ``rect`` (the box),
``poly`` (the traced polygon), ``quad`` (its minimum-area rectangle) or ``auto`` (rect when the
quad is nearly the box, quad when the polygon is nearly a quad and does not touch the previous
box, else the polygon). Points are float32 arrays, as PaddleX returns them (their JSON is theirs).
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

SHAPE_MODES = ("rect", "quad", "poly", "auto")


def overlap_ratio(poly1, poly2, mode: str = "union") -> float:
    """Intersection over the union, the smaller or the larger polygon (shapely, invalid rings
    repaired with ``buffer(0)`` as PaddleX does)."""
    from shapely.geometry import Polygon

    a, b = (_valid(Polygon(p)) for p in (poly1, poly2))
    inter = a.intersection(b).area
    if mode == "union":
        return inter / a.union(b).area
    if mode == "small":
        return inter / min(a.area, b.area)
    if mode == "large":
        return inter / max(a.area, b.area)
    raise ValueError(f"Unknown mode: {mode}")


def _valid(poly):
    return poly if poly.is_valid else poly.buffer(0)


def _is_convex(p_prev, p_curr, p_next) -> bool:
    v1, v2 = p_curr - p_prev, p_next - p_curr
    return v1[0] * v2[1] - v1[1] * v2[0] < 0


def _angle(v1, v2) -> float:
    u1, u2 = v1 / np.linalg.norm(v1), v2 / np.linalg.norm(v2)
    return np.degrees(np.arccos(np.clip(np.dot(u1, u2), -1.0, 1.0)))


def _concave_runs(concave: list[int], n: int) -> set[int]:
    """Concave vertices that come in runs of two or more (kept when their angle is wide)."""
    if not concave:
        return set()
    groups, current = [], [concave[0]]
    for prev, idx in zip(concave, concave[1:]):
        if idx - prev == 1 or (prev == n - 1 and idx == 0):
            current.append(idx)
        else:
            if len(current) >= 2:
                groups.extend(current)
            current = [idx]
    if len(current) >= 2:
        groups.extend(current)
    if len(concave) >= 2 and concave[0] == 0 and concave[-1] == n - 1:
        return set(groups) if 0 in groups and n - 1 in groups else set()
    return set(groups)


def _fill_long_edges(poly, kept: list[int], max_dist: float) -> list[int]:
    """Keep enough of the dropped vertices that no edge is longer than ``max_dist``."""
    n, final = len(poly), []
    for k, current in enumerate(kept):
        nxt = kept[(k + 1) % len(kept)]
        final.append(current)
        dist = np.linalg.norm(poly[current] - poly[nxt])
        if dist <= max_dist:
            continue
        between = list(range(current + 1, nxt)) if nxt > current else list(range(current + 1, n)) + list(range(0, nxt))
        if between:
            needed = int(np.ceil(dist / max_dist)) - 1
            if len(between) <= needed:
                final.extend(between)
            else:
                step = len(between) / needed
                final.extend(between[int(i * step)] for i in range(needed))
    return sorted(set(final))


def custom_vertices(polygon, max_allowed_dist: float, sharp_angle: float = 45, max_dist_ratio: float = 0.3):
    """The salient vertices of a traced contour (convex ones, wide concave runs), with sharp
    45-degree corners pushed outwards along their bisector."""
    poly = np.array(polygon)
    n = len(poly)
    info = []
    for i in range(n):
        p_prev, p_curr, p_next = poly[(i - 1) % n], poly[i], poly[(i + 1) % n]
        v1, v2 = p_prev - p_curr, p_next - p_curr
        info.append((_is_convex(p_prev, p_curr, p_next), _angle(v1, v2), v1, v2))
    keep_concave = _concave_runs([i for i, x in enumerate(info) if not x[0]], n)
    kept = [i for i, x in enumerate(info) if x[0] or (i in keep_concave and x[1] >= 120)]
    res = []
    for i in _fill_long_edges(poly, kept, max_allowed_dist * max_dist_ratio):
        convex, angle, v1, v2 = info[i]
        if convex and abs(angle - sharp_angle) < 1:
            direction = v1 / np.linalg.norm(v1) + v2 / np.linalg.norm(v2)
            direction /= np.linalg.norm(direction)
            res.append(tuple(poly[i] + direction * ((np.linalg.norm(v1) + np.linalg.norm(v2)) / 2)))
        else:
            res.append(tuple(poly[i]))
    return res


def mask_to_polygon(mask: np.ndarray, max_allowed_dist: float, epsilon_ratio: float = 0.004):
    """The largest external contour of a binary mask, simplified, as salient vertices (or None)."""
    import cv2

    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return None
    contour = max(contours, key=cv2.contourArea)
    approx = cv2.approxPolyDP(contour, epsilon_ratio * cv2.arcLength(contour, True), True)
    return custom_vertices(np.atleast_2d(approx.squeeze()), max_allowed_dist)


def rect_from_box(box) -> np.ndarray:
    x1, y1, x2, y2 = np.asarray(box).astype(np.int32)
    return np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2]], dtype=np.float32)


def polygon_to_quad(polygon) -> Optional[np.ndarray]:
    """Minimum-area rectangle of a polygon, clockwise from its top-left corner (None below 3 points)."""
    import cv2

    if polygon is None or len(polygon) < 3:
        return None
    points = np.array(polygon, dtype=np.float32).reshape(-1, 2)
    quad = cv2.boxPoints(cv2.minAreaRect(points))
    center = quad.mean(axis=0)
    quad = quad[np.argsort(np.arctan2(quad[:, 1] - center[1], quad[:, 0] - center[0]))]
    return np.roll(quad, -np.argmin(quad[:, 0] + quad[:, 1]), axis=0)


def shape_polygon(box, polygon, mode: str, previous: Optional[np.ndarray] = None) -> np.ndarray:
    """The polygon a box is reported and cropped with under ``layout_shape_mode``."""
    rect = rect_from_box(box)
    if polygon is None:
        return rect
    polygon = np.asarray(polygon, dtype=np.float32)
    if polygon.ndim == 1:
        polygon = polygon.reshape(-1, 2)
    if len(polygon) < 4 or mode == "rect":
        return rect
    if mode == "poly":
        return polygon
    quad = polygon_to_quad(polygon)
    if mode == "quad":
        return quad if quad is not None else rect
    if mode != "auto":
        raise ValueError("layout_shape_mode must be one of ['rect', 'poly', 'quad', 'auto']")
    if quad is not None:
        if overlap_ratio(rect.tolist(), quad.tolist(), "union") >= 0.95:
            return rect
        near_quad = overlap_ratio(polygon.tolist(), quad.tolist(), "union")
        touches = overlap_ratio(previous.tolist(), rect.tolist(), "small") if previous is not None else 0
        if near_quad >= 0.8 and touches < 0.01:
            return quad
    return polygon


def polygons_from_masks(boxes: np.ndarray, masks: Sequence[np.ndarray], scale_ratio, mode: str) -> list[np.ndarray]:
    """One polygon per post-processed box (rows ``[cls, score, x1, y1, x2, y2]`` in page pixels,
    reading order) from its mask; ``scale_ratio`` = model input size / page size, (w, h)."""
    import cv2

    masks = np.asarray(masks)
    scale_w, scale_h = scale_ratio[0] / 4, scale_ratio[1] / 4
    mask_h, mask_w = masks.shape[1:]
    widest = max(boxes[:, 4] - boxes[:, 3])  # sic: PaddleX subtracts y1 from x2 here
    out: list[np.ndarray] = []
    for i in range(len(boxes)):
        x1, y1, x2, y2 = boxes[i, 2:6].astype(np.int32)
        w, h = x2 - x1, y2 - y1
        if w <= 0 or h <= 0:
            out.append(rect_from_box(boxes[i, 2:6]))
            continue
        xs = np.clip([int(round(x1 * scale_w)), int(round(x2 * scale_w))], 0, mask_w)
        ys = np.clip([int(round(y1 * scale_h)), int(round(y2 * scale_h))], 0, mask_h)
        cropped = masks[i, ys[0]:ys[1], xs[0]:xs[1]]
        if cropped.size == 0 or np.sum(cropped) == 0:
            out.append(rect_from_box(boxes[i, 2:6]))
            continue
        resized = cv2.resize(cropped.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST)
        polygon = mask_to_polygon(resized, w if w > widest * 0.6 else widest)
        if polygon is not None and len(polygon) > 0:
            polygon = polygon + np.array([x1, y1])
        out.append(shape_polygon(boxes[i, 2:6], polygon, mode, out[-1] if out else None))
    return out
