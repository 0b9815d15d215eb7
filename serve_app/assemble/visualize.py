"""Layout visualisations returned as ``outputImages``: ``layout_det_res`` (boxes with label,
score and reading-order number) and ``layout_order_res`` (blocks tinted by kind, numbered). A
region with a polygon (PP-DocLayoutV3) is drawn as its polygon, filled translucently, as PaddleX
draws masks."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from deployments.datamodel import PageResult
from deployments.labels import SKIP_ORDER_LABELS

# PaddleX's detection colormap (first entries), cycled per label.
_COLORS = [(255, 0, 0), (204, 255, 0), (0, 255, 102), (0, 102, 255), (204, 0, 255), (255, 77, 0),
           (128, 255, 0), (0, 255, 178), (0, 26, 255), (255, 0, 229), (255, 153, 0), (51, 255, 0),
           (0, 255, 255), (51, 0, 255), (255, 0, 153), (255, 230, 0), (0, 255, 26), (0, 178, 255)]
_TINTS = {
    "paragraph_title": (102, 102, 255, 100), "doc_title": (255, 248, 220, 100),
    "figure_title": (102, 178, 255, 100), "vision_footnote": (144, 238, 144, 100),
    "text": (153, 0, 76, 100), "vertical_text": (153, 0, 76, 100), "inline_formula": (153, 0, 76, 100),
    "display_formula": (0, 255, 0, 100), "abstract": (255, 239, 213, 100), "content": (40, 169, 92, 100),
    "seal": (158, 158, 158, 100), "table": (204, 204, 0, 100), "image": (153, 255, 51, 100),
    "chart": (216, 191, 216, 100), "reference_content": (229, 255, 204, 100), "algorithm": (255, 250, 240, 100),
}


def _font(width: int):
    return ImageFont.load_default(size=int(0.018 * width) + 2)


def draw_layout(page_image: np.ndarray, page: PageResult) -> Image.Image:
    """Every layout box outlined, with ``label score`` above it and its index beside it."""
    img = Image.fromarray(page_image).convert("RGB")
    draw, font = ImageDraw.Draw(img, "RGBA"), _font(img.width)
    thickness = max(1, int(max(img.size) * 0.002))
    colors: dict[str, tuple] = {}
    for i, box in enumerate(page.layout_boxes):
        color = colors.setdefault(box.label, _COLORS[i % len(_COLORS)])
        x1, y1, x2, y2 = box.coordinate
        if box.polygon_points is not None:
            draw.polygon(_points(box.polygon_points), outline=color, fill=(*color, 90), width=thickness)
        else:
            draw.rectangle([x1, y1, x2, y2], outline=color, width=thickness)
        text = f"{box.label} {box.score:.2f}"
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        tw, th = right - left, bottom - top + 4
        ty = y1 if y1 < th else y1 - th
        draw.rectangle([x1, ty, x1 + tw + 4, ty + th + 1], fill=color)
        draw.text((x1 + 2, ty - 2), text, fill=(20, 14, 53), font=font)
        draw.text((min(x2 + 2, img.width - font.size), y1 - font.size // 2), str(i + 1), font=font, fill="red")
    return img


def draw_reading_order(page_image: np.ndarray, page: PageResult) -> Image.Image:
    """Blocks tinted by label and numbered in reading order (skipped labels unnumbered)."""
    img = Image.fromarray(page_image).convert("RGB")
    draw, font = ImageDraw.Draw(img, "RGBA"), _font(img.width)
    order = 1
    for block in page.blocks:
        x1, y1, x2, y2 = block.bbox
        tint = _TINTS.get(block.label, (158, 158, 158, 100))
        if block.polygon_points is not None:
            draw.polygon(_points(block.polygon_points), fill=tint)
        else:
            draw.rectangle([x1, y1, x2, y2], fill=tint)
        if block.label in SKIP_ORDER_LABELS:
            continue
        pos = (x2 + 2, y1 - font.size // 2) if img.width - x2 >= font.size else (int(x2 - font.size * 1.1), y1 - font.size // 2)
        draw.text(pos, str(order), font=font, fill="red")
        order += 1
    return img


def _points(polygon) -> list[tuple[float, float]]:
    return [(float(x), float(y)) for x, y in np.asarray(polygon, dtype=np.float64).reshape(-1, 2)]


def visualize(page_image: np.ndarray, page: PageResult, use_layout: bool = True) -> dict[str, Image.Image]:
    """The ``outputImages`` of a page (only ``layout_order_res`` without layout detection)."""
    images = {}
    if use_layout:
        images["layout_det_res"] = draw_layout(page_image, page)
    images["layout_order_res"] = draw_reading_order(page_image, page)
    return images
