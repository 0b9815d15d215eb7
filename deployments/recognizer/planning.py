"""Block planning: from a page and its layout boxes to the blocks sent to the model.

Order of operations (PaddleX ``_paddleocr_vl_prepare_page_core``): gather page images (figures,
seals) from all boxes → ``filter_overlap_boxes`` → crop → ``merge_blocks`` → prompt and pixel
budget per block (tables get figure tokens, formulas a margin crop) → our guards for crops the
engine cannot take (too thin, too elongated).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Optional

import numpy as np
from PIL import Image

from deployments.datamodel import Block, LayoutBox
from deployments.labels import DOC_IMAGE_LABELS, PROMPTS, image_path
from deployments.recognizer.filtering import filter_overlap_boxes
from deployments.recognizer.merging import merge_blocks
from deployments.recognizer.options import PlanOptions
from deployments.recognizer.table_figures import tokenize_figures


@dataclass(slots=True)
class PagePlan:
    """Blocks of one page in output order, the page's figure crops, and figures eaten by tables."""

    blocks: list[Block]
    doc_images: list[dict] = field(default_factory=list)
    dropped_figures: set[str] = field(default_factory=set)


def whole_page_box(width: int, height: int, prompt_label: str) -> LayoutBox:
    """The single box used when layout detection is off (label = the prompt label)."""
    return LayoutBox(0, prompt_label, 1.0, (0, 0, width, height), None)


def gather_doc_images(page: np.ndarray, boxes: list[LayoutBox]) -> list[dict]:
    """Crops of every image/figure/seal box: ``{path, coordinate, crop}`` (RGB)."""
    h, w = page.shape[:2]
    out = []
    for box in boxes:
        if box.label not in DOC_IMAGE_LABELS:
            continue
        x1, y1, x2, y2 = box.coordinate
        x1, x2 = max(0, min(x1, w)), max(0, min(x2, w))
        y1, y2 = max(0, min(y1, h)), max(0, min(y2, h))
        if x2 <= x1 or y2 <= y1:
            continue
        crop = np.ascontiguousarray(page[y1:y2, x1:x2, :3])
        out.append({"path": image_path(box.label, box.coordinate), "coordinate": (x1, y1, x2, y2), "crop": crop})
    return out


def crop_margin(img: np.ndarray) -> np.ndarray:
    """Tight crop around dark content (grey, contrast-stretched, threshold 200)."""
    gray = img
    if img.ndim == 3:
        import cv2  # OpenCV's grey weights, so the crop matches PaddleX pixel for pixel

        gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    lo, hi = int(gray.min()), int(gray.max())
    if lo == hi:
        return img
    lut = np.zeros(256, dtype=np.uint8)
    values = np.arange(lo, hi + 1)
    lut[lo : hi + 1] = ((values - lo) / (hi - lo) * 255).astype(np.uint8)
    ys, xs = np.nonzero(lut[gray] <= 200)
    if len(ys) == 0:
        return img
    return img[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]


def guard_image(img: np.ndarray, options: PlanOptions) -> tuple[Optional[np.ndarray], Optional[str]]:
    """Pad crops thinner than ``min_side``; pad or skip crops more elongated than ``max_aspect``.

    PaddleOCR-VL's processor rejects aspect ratios over 200 and old processors crashed on tiny
    crops (PaddleOCR #17378); PaddleX sends them anyway. We never do.
    """
    h, w = img.shape[:2]
    warning = None
    th, tw = max(h, options.min_side), max(w, options.min_side)
    if (th, tw) != (h, w):
        warning = f"crop {w}x{h} px padded to {tw}x{th}"
    ratio = max(th, tw) / min(th, tw)
    if ratio > options.max_aspect:
        if options.extreme_aspect == "skip":
            return None, f"crop {w}x{h} px has aspect ratio {ratio:.0f} > {options.max_aspect:.0f}; skipped"
        short = math.ceil(max(th, tw) / options.max_aspect)
        th, tw = (max(th, short), tw) if tw > th else (th, max(tw, short))
        warning = f"crop {w}x{h} px (aspect ratio {ratio:.0f}) padded to {tw}x{th}"
    if (th, tw) == (h, w):
        return img, None
    canvas = np.full((th, tw, img.shape[2]), 255, dtype=img.dtype)
    top, left = (th - h) // 2, (tw - w) // 2
    canvas[top : top + h, left : left + w] = img
    return canvas, warning


def _crop_blocks(page: np.ndarray, boxes: list[LayoutBox]) -> list[Block]:
    blocks = []
    h, w = page.shape[:2]
    for n, box in enumerate(boxes):
        x1, y1, x2, y2 = (int(v) for v in box.coordinate)
        crop = page[max(0, y1):y2, max(0, x1):x2].copy()
        warning = None
        if crop.size == 0:  # only boxes not clamped by layout post-processing can get here
            crop, warning = None, f"box {box.coordinate} lies outside the {w}x{h} page; skipped"
        elif box.polygon_points is not None:
            crop = mask_outside(crop, box.polygon_points, (x1, y1))
        blocks.append(Block(index=n, label=box.label, bbox=box.coordinate, image=crop, crop=crop, warning=warning,
                            polygon_points=box.polygon_points))
    return blocks


def mask_outside(crop: np.ndarray, polygon: np.ndarray, origin: tuple[int, int]) -> np.ndarray:
    """The crop with everything outside the region's polygon white (PaddleX ``CropByBoxes``:
    the points truncated to int, filled with OpenCV)."""
    import cv2

    mask = np.zeros(crop.shape[:2], dtype=np.int32)
    points = np.array(polygon, dtype=np.int32).reshape((-1, 1, 2))
    if len(points) > 0:
        points = points - np.array(origin)
    cv2.fillPoly(mask, [points], 1)
    crop[~mask.astype(bool)] = 255
    return crop


def _prompt_for(block: Block, options: PlanOptions) -> tuple[str, str]:
    """(task kind, prompt) of a block that is sent to the model."""
    label = block.label
    if label == "table":
        return "table", PROMPTS["table"]
    if label == "chart" and options.use_chart_recognition:
        return "chart", PROMPTS["chart"]
    if "formula" in label and label != "formula_number":
        return "formula", PROMPTS["formula"]
    if label == "spotting":
        return "spotting", PROMPTS["spotting"]
    if label == "seal" and options.use_seal_recognition:
        return "seal", PROMPTS["seal"]
    return "ocr", PROMPTS["ocr"]


def _model_input(block: Block, kind: str, doc_images: list[dict]) -> tuple[np.ndarray, dict, list[str]]:
    img, token_map, eaten = block.image, {}, []
    if kind == "table":
        img, token_map, eaten = tokenize_figures(img, block.bbox, doc_images)
    elif kind == "formula":
        tight = crop_margin(img)
        if tight.shape[0] > 2 and tight.shape[1] > 2:
            img = tight
    elif kind == "spotting" and max(img.shape[:2]) < 1500:
        h, w = img.shape[:2]
        img = np.array(Image.fromarray(img).resize((w * 2, h * 2), Image.Resampling.LANCZOS))
    return img, token_map, eaten


def plan_page(page: np.ndarray, boxes: list[LayoutBox], options: Optional[PlanOptions] = None) -> PagePlan:
    """Plan every block of one page (``page`` RGB, ``boxes`` in reading order)."""
    options = options or PlanOptions()
    doc_images = gather_doc_images(page, boxes)
    blocks = _crop_blocks(page, filter_overlap_boxes(boxes))
    skipped = options.skipped_labels()
    if options.merge_layout_blocks:
        blocks = merge_blocks(blocks, skipped + ["table"] * ("table" not in skipped))
    plan = PagePlan(blocks=[], doc_images=doc_images)
    for n, block in enumerate(blocks):
        block = replace(block, index=n, crop=block.image)
        if block.label in skipped or block.image is None:
            plan.blocks.append(replace(block, image=None))
            continue
        kind, prompt = _prompt_for(block, options)
        img, token_map, eaten = _model_input(block, kind, doc_images)
        plan.dropped_figures.update(eaten)
        img, warning = guard_image(img, options)
        lo, hi = options.pixels_for(kind)
        plan.blocks.append(replace(
            block, image=img, prompt=prompt if img is not None else None, min_pixels=lo, max_pixels=hi,
            figure_token_map=token_map, warning=warning))
    return plan
