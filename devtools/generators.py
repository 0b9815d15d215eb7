"""Seeded generators of test inputs: synthetic pages, layout boxes, model answers, OTSL."""

from __future__ import annotations

import random

import numpy as np
from PIL import Image, ImageDraw

from deployments.datamodel import LayoutBox
from deployments.labels import PP_DOCLAYOUT_V2_LABELS

WORDS = "the of model table page layout parsing formula result block text merge order vision".split()
COMMON_LABELS = ["text"] * 8 + ["paragraph_title"] * 2 + [
    "doc_title", "table", "table", "image", "image", "chart", "display_formula", "inline_formula",
    "formula_number", "figure_title", "header", "footer", "number", "seal", "abstract", "content",
    "algorithm", "reference", "reference_content", "vision_footnote", "aside_text", "footnote",
    "header_image", "footer_image", "vertical_text",
]


def synthetic_page(rng: random.Random, width: int = 600, height: int = 800) -> np.ndarray:
    """A white RGB page with coloured rectangles and dark text lines (deterministic)."""
    img = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    for _ in range(rng.randint(3, 10)):
        x, y = rng.randrange(width - 40), rng.randrange(height - 40)
        color = tuple(rng.randrange(256) for _ in range(3))
        draw.rectangle([x, y, x + rng.randint(10, 200), y + rng.randint(10, 120)], fill=color)
    for _ in range(rng.randint(10, 40)):
        x, y = rng.randrange(width - 60), rng.randrange(height - 15)
        draw.text((x, y), " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 6))), fill=(0, 0, 0))
    return np.array(img)


def random_box(rng: random.Random, width: int, height: int, label: str | None = None) -> LayoutBox:
    label = label or rng.choice(COMMON_LABELS)
    w, h = rng.randint(3, width // 2), rng.randint(3, height // 4)
    x1, y1 = rng.randrange(0, width - w), rng.randrange(0, height - h)
    return LayoutBox(PP_DOCLAYOUT_V2_LABELS.index(label), label, round(rng.uniform(0.3, 1), 4),
                     (x1, y1, x1 + w, y1 + h), None)


def text_column(rng: random.Random, x: int, y: int, n: int, width: int = 200) -> list[LayoutBox]:
    """Stacked text blocks sharing one edge: candidates for block merging."""
    boxes = []
    for _ in range(n):
        h = rng.randint(15, 60)
        right = x + width + (rng.choice([0, 0, 30]) if rng.random() < 0.5 else 0)
        boxes.append(LayoutBox(22, "text", 0.9, (x, y, right, y + h), None))
        y += h + rng.randint(0, 25)
    return boxes


def random_layout(rng: random.Random, width: int, height: int) -> list[LayoutBox]:
    """Random boxes plus structured cases: text columns beside a table, a figure in a table."""
    boxes = [random_box(rng, width, height) for _ in range(rng.randint(0, 18))]
    if rng.random() < 0.6:
        col = text_column(rng, rng.randint(0, 100), rng.randint(0, 200), rng.randint(2, 5))
        boxes += col
        x2 = max(b.coordinate[2] for b in col)
        boxes.append(LayoutBox(21, "table", 0.9, (min(x2 - 10, width - 60), col[0].coordinate[1], width - 1,
                                                  col[-1].coordinate[3]), None))
    if rng.random() < 0.5:
        tx, ty = rng.randint(0, 200), rng.randint(300, 500)
        boxes.append(LayoutBox(21, "table", 0.95, (tx, ty, tx + 350, ty + 250), None))
        fx, fy = tx + rng.randint(0, 100), ty + rng.randint(0, 100)
        side = rng.choice([12, 40, 90])
        boxes.append(LayoutBox(14, "image", 0.8, (fx, fy, fx + side, fy + side), None))
    rng.shuffle(boxes)
    return boxes


def with_polygons(rng: random.Random, boxes: list[LayoutBox], mode: str) -> list[LayoutBox]:
    """The boxes as PP-DocLayoutV3's post-processing gives them under ``mode``: rect → no polygons;
    otherwise every box has one (float32, page pixels): its rectangle, a quad turned a few degrees,
    or a polygon with a notch cut out, drawn inside the box and sometimes past its edge."""
    import cv2

    from deployments.layout.polygons import rect_from_box

    if mode == "rect":
        return boxes
    out = []
    for box in boxes:
        x1, y1, x2, y2 = box.coordinate
        w, h = x2 - x1, y2 - y1
        kind = rng.choice(["rect", "quad", "notch", "rect"] if mode != "quad" else ["rect", "quad"])
        if kind == "quad":
            points = cv2.boxPoints(((x1 + w / 2, y1 + h / 2), (w * 0.95, h * 0.9), rng.uniform(-8, 8)))
        elif kind == "notch":
            cx, cy = x1 + w * rng.uniform(0.3, 0.7), y1 + h * rng.uniform(0.3, 0.7)
            points = np.array([[x1, y1], [x2, y1], [x2, cy], [cx, cy], [cx, y2 + rng.choice([0, 3])], [x1, y2]])
        else:
            points = rect_from_box(box.coordinate)
        out.append(LayoutBox(box.cls_id, box.label, box.score, box.coordinate, box.order,
                             np.asarray(points, dtype=np.float32)))
    return out


def random_otsl(rng: random.Random) -> str:
    tags = ["<fcel>", "<fcel>", "<fcel>", "<ecel>", "<lcel>", "<ucel>", "<xcel>", "<nl>"]
    parts = []
    for _ in range(rng.randint(0, 40)):
        tag = rng.choice(tags)
        parts.append(tag)
        if tag == "<fcel>" or rng.random() < 0.1:
            parts.append(rng.choice(["", " ", "a", "x<y", "1 & 2", rng.choice(WORDS), " [F23] ", "\n"]))
    text = "".join(parts)
    return text if rng.random() < 0.9 else " " + text + " \n"


def repetitive_text(rng: random.Random) -> str:
    unit = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 4)))
    kind = rng.randrange(6)
    if kind == 0:
        return "intro " * rng.randint(0, 20) + unit * rng.randint(1, 400)
    if kind == 1:
        return unit[: rng.randint(1, 3)] * rng.randint(1, 200)
    if kind == 2:
        lines = [unit] * rng.randint(5, 40) + [rng.choice(WORDS) for _ in range(rng.randint(0, 10))]
        rng.shuffle(lines)
        return "\n".join(lines)
    if kind == 3:
        return "".join(rng.choice("ab \n12") for _ in range(rng.randint(0, 6000)))
    if kind == 4:
        return rng.choice(WORDS) * rng.randint(100, 1500) + "\n"
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(0, 1200)))


LATEX = ["\\(x^2\\) and \\(y\\)", "\\[\\[E=mc^2\\]\\]", "$a$ \\[b\\]", "(1)", "\\(3\\)", "plain $x$"]
CHART = ["year|sales\n2020|3\n2021|5", "a|b|c", "only header"]


def answer_for(query: str, rgb: np.ndarray) -> str:
    """The fake model's deterministic answer for a prompt and image (colour-order free)."""
    rng = random.Random(int(rgb.astype(np.int64).sum()) * 31 + len(query) + rgb.shape[0] * 7 + rgb.shape[1])
    if query == "Table Recognition:":
        return random_otsl(rng) + rng.choice(["", "<fcel>[F23]<fcel>[F24]<nl>", "<fcel>[F2]<nl>"])
    if query == "Formula Recognition:":
        return rng.choice(LATEX)
    if query == "Chart Recognition:":
        return rng.choice(CHART)
    if rng.random() < 0.2:
        return repetitive_text(rng)
    words = [rng.choice(WORDS + LATEX[:2] + ["1.2 Intro", "Abstract", "-\n", "\n", "\n\n"]) for _ in range(rng.randint(0, 12))]
    return " ".join(words)
