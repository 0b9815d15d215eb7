"""Stacking of neighbouring text blocks into one image (PaddleX ``merge_blocks``).

Consecutive ``text`` blocks are read in one model call when they are side by side (gap < 0.3 of
the wider) or stacked with exactly one aligned edge and their union touches a non-mergeable
block. Merged groups share ``group_id``; only the first member carries the merged image.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Optional, Sequence

import numpy as np
from PIL import Image

from deployments.datamodel import Block
from deployments.geometry import intersection_area, projection_overlap

ALIGN_TOLERANCE = 5
MAX_MERGED_ASPECT = 3  # a merged image taller than 3x its width is not merged


def merge_images(images: Sequence[np.ndarray], aligns: Sequence[str]) -> np.ndarray:
    """Stack images vertically on white, each step aligned left/right/center."""
    if len(images) == 1:
        return images[0]
    pils = [Image.fromarray(img) for img in images]
    offsets, merged_w = [0] * len(pils), pils[0].width
    for i in range(1, len(pils)):
        step_w = max(merged_w, pils[i].width)
        shift, own = _align_offsets(aligns[i - 1], step_w, merged_w, pils[i].width)
        offsets[:i] = [o + shift for o in offsets[:i]]
        offsets[i], merged_w = own, step_w
    canvas = Image.new("RGB", (merged_w, sum(p.height for p in pils)), (255, 255, 255))
    y = 0
    for pil, x in zip(pils, offsets):
        canvas.paste(pil, (x, y))
        y += pil.height
    return np.array(canvas)


def _align_offsets(align: str, step_w: int, merged_w: int, new_w: int) -> tuple[int, int]:
    if align == "center":
        return (step_w - merged_w) // 2, (step_w - new_w) // 2
    if align == "right":
        return step_w - merged_w, step_w - new_w
    return 0, 0


def _aligned(a: float, b: float) -> bool:
    return abs(a - b) <= ALIGN_TOLERANCE


def _touches_fixed_block(blocks, i, j, fixed_labels) -> bool:
    a, b = blocks[i].bbox, blocks[j].bbox
    union = [min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])]
    return any(
        k not in (i, j) and other.label in fixed_labels and intersection_area(union, other.bbox) > 0
        for k, other in enumerate(blocks)
    )


def _join_mode(blocks, cur: int, prev: int, fixed_labels) -> Optional[str]:
    """How block ``cur`` joins ``prev``'s group: 'center'/'left'/'right', or None."""
    b, p = blocks[cur], blocks[prev]
    if b.label != "text" or p.label != "text" or b.image is None or p.image is None:
        return None
    bb, pb = b.bbox, p.bbox
    iou_h = projection_overlap(bb, pb, "horizontal")
    widest = max(pb[2] - pb[0], bb[2] - bb[0])
    if iou_h == 0 and bb[0] > pb[2] and bb[1] < pb[3] and bb[0] - pb[2] < widest * 0.3:
        return "center"
    tallest = max(pb[3] - pb[1], bb[3] - bb[1])
    if (
        iou_h > 0 and bb[3] >= pb[1] and abs(bb[1] - pb[3]) < tallest * 0.5
        and (_aligned(bb[0], pb[0]) ^ _aligned(bb[2], pb[2]))
        and _touches_fixed_block(blocks, cur, prev, fixed_labels)
    ):
        return "left" if _aligned(bb[0], pb[0]) else "right" if _aligned(bb[2], pb[2]) else "center"
    return None


def _groups(blocks, fixed_labels) -> list[tuple[list[int], list[str]]]:
    mergeable = [k for k, b in enumerate(blocks) if b.label not in fixed_labels]
    groups: list[tuple[list[int], list[str]]] = []
    for n, idx in enumerate(mergeable):
        mode = _join_mode(blocks, idx, mergeable[n - 1], fixed_labels) if groups else None
        if mode is None:
            groups.append(([idx], []))
        else:
            groups[-1][0].append(idx)
            groups[-1][1].append(mode)
    return groups


def merge_blocks(blocks: list[Block], fixed_labels: Sequence[str]) -> list[Block]:
    """Merge neighbouring text blocks; blocks of ``fixed_labels`` are never merged.

    As in PaddleX, fixed blocks that sit inside a merged group's index range are emitted after
    the group, and every group (even of one block) takes the index of its first block as
    ``group_id`` unless its merged image would be too tall.
    """
    fixed = {k: b for k, b in enumerate(blocks) if b.label in fixed_labels}
    starts = {indices[0]: (indices, aligns) for indices, aligns in _groups(blocks, fixed_labels)}
    out: list[Block] = []
    idx = 0
    while idx < len(blocks):
        if idx in starts:
            indices, aligns = starts[idx]
            out.extend(_emit_group(blocks, indices, aligns))
            out.extend(fixed[k] for k in range(idx + 1, indices[-1]) if k in fixed)
            idx = indices[-1] + 1
            continue
        if idx in fixed:
            out.append(fixed[idx])
        idx += 1
    return out


def _emit_group(blocks, indices, aligns) -> list[Block]:
    images = [blocks[k].image for k in indices]
    if any(img is None for img in images):  # a box outside the page: nothing to merge
        return [blocks[k] for k in indices]
    width = max(img.shape[1] for img in images)
    height = sum(img.shape[0] for img in images)
    if (height / width if width else float("inf")) >= MAX_MERGED_ASPECT:
        return [blocks[k] for k in indices]
    merged = merge_images(images, aligns)
    return [
        replace(blocks[k], image=merged if n == 0 else None, group_id=indices[0])
        for n, k in enumerate(indices)
    ]
