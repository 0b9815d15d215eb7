"""Rule-level differential tests against PaddleX helpers on generated inputs."""

from __future__ import annotations

import random

import numpy as np
import pytest
from devtools.official import uilts

from deployments.datamodel import Block
from deployments.recognizer.filtering import filter_overlap_boxes
from deployments.recognizer.merging import merge_blocks
from deployments.recognizer.otsl import otsl_to_html
from deployments.recognizer.planning import crop_margin
from deployments.recognizer.table_figures import tokenize_figures
from deployments.recognizer.textpost import truncate_repetitive_content
from devtools.generators import random_box, random_layout, random_otsl, repetitive_text, synthetic_page, text_column

pytestmark = pytest.mark.differential


def _outcome(func, *args):
    try:
        return func(*args)
    except Exception as exc:  # noqa: BLE001 - the exception type is part of the comparison
        return type(exc)


@pytest.mark.parametrize("seed", range(500))
def test_otsl_to_html(seed):
    otsl = random_otsl(random.Random(seed))
    assert _outcome(otsl_to_html, otsl) == _outcome(uilts.convert_otsl_to_html, otsl)


@pytest.mark.parametrize("seed", range(300))
def test_truncate_repetitive_content(seed):
    text = repetitive_text(random.Random(seed))
    for min_count in (50, 5000, 3000):
        assert truncate_repetitive_content(text, min_count=min_count) == uilts.truncate_repetitive_content(
            text, min_count=min_count)


@pytest.mark.parametrize("seed", range(300))
def test_filter_overlap_boxes(seed):
    rng = random.Random(seed)
    boxes = random_layout(rng, 600, 800) + [random_box(rng, 600, 800, "inline_formula") for _ in range(rng.randint(0, 3))]
    dicts = [{"cls_id": b.cls_id, "label": b.label, "score": b.score, "coordinate": list(b.coordinate)} for b in boxes]
    official = uilts.filter_overlap_boxes({"boxes": dicts}, "rect")["boxes"]
    assert [(b.label, list(b.coordinate)) for b in filter_overlap_boxes(boxes)] == [
        (d["label"], d["coordinate"]) for d in official]


@pytest.mark.parametrize("seed", range(200))
def test_merge_blocks(seed):
    rng = random.Random(seed)
    page = synthetic_page(rng)
    boxes = text_column(rng, rng.randint(0, 50), rng.randint(0, 100), rng.randint(1, 6), rng.randint(60, 300))
    boxes += [random_box(rng, 600, 800, rng.choice(["table", "image", "text"])) for _ in range(rng.randint(0, 4))]
    rng.shuffle(boxes) if rng.random() < 0.3 else None
    fixed = ["image", "header_image", "footer_image", "chart", "seal", "table"]
    crops = [page[b.coordinate[1]:b.coordinate[3], b.coordinate[0]:b.coordinate[2]].copy() for b in boxes]
    ours = merge_blocks([Block(i, b.label, b.coordinate, c) for i, (b, c) in enumerate(zip(boxes, crops))], fixed)
    official = uilts.merge_blocks([{"label": b.label, "box": list(b.coordinate), "img": c} for b, c in zip(boxes, crops)], fixed)
    assert [(b.label, tuple(b.bbox), b.group_id) for b in ours] == [
        (d["label"], tuple(d["box"]), d.get("group_id")) for d in official]
    for b, d in zip(ours, official):
        assert (b.image is None and d["img"] is None) or np.array_equal(b.image, d["img"])


@pytest.mark.parametrize("seed", range(200))
def test_crop_margin(seed):
    rng = random.Random(seed)
    page = synthetic_page(rng, 200, 120)
    y, x = rng.randrange(100), rng.randrange(180)
    crop = page[y:, x:] if rng.random() < 0.8 else np.full((rng.randint(1, 9), rng.randint(1, 9), 3), rng.randrange(256), np.uint8)
    official = uilts.crop_margin(np.ascontiguousarray(crop[..., ::-1]))
    assert np.array_equal(crop_margin(crop), official[..., ::-1])


@pytest.mark.parametrize("seed", range(60))
def test_tokenize_figures_in_tables(seed):
    rng = random.Random(seed)
    page = synthetic_page(rng)
    tx, ty = rng.randint(0, 100), rng.randint(0, 300)
    table_box = [tx, ty, tx + 400, ty + 300]
    figures = []
    for n in range(rng.randint(0, 5)):
        fx, fy, side = tx + rng.randint(-20, 300), ty + rng.randint(-20, 200), rng.choice([10, 24, 25, 60, 120])
        figures.append({"coordinate": [fx, fy, fx + side, fy + side], "path": f"imgs/img_in_image_box_{n}.jpg"})
    table = page[ty:ty + 300, tx:tx + 400].copy()
    img, token_map, dropped = tokenize_figures(table, table_box, figures)
    off_img, off_map, off_dropped = uilts.tokenize_figure_of_table(np.ascontiguousarray(table[..., ::-1]), table_box, figures)
    assert token_map == off_map and dropped == off_dropped
    assert np.array_equal(img, off_img[..., ::-1])
