"""Golden tests of block planning: filtering, merging, prompts, pixel budgets and our guards."""

import pickle

import numpy as np
import pytest
from pydantic import ValidationError

from deployments.datamodel import LayoutBox
from deployments.recognizer.filtering import filter_overlap_boxes
from deployments.recognizer.options import PlanOptions, check_prompt_label
from deployments.recognizer.planning import crop_margin, guard_image, plan_page, whole_page_box


def box(label, x1, y1, x2, y2, cls_id=0):
    return LayoutBox(cls_id, label, 0.9, (x1, y1, x2, y2), None)


def white(h=400, w=300):
    return np.full((h, w, 3), 255, np.uint8)


def test_filter_drops_references_slivers_and_smaller_duplicates():
    boxes = [box("reference", 0, 0, 50, 50), box("text", 0, 100, 5, 200), box("text", 0, 300, 100, 400),
             box("paragraph_title", 5, 305, 95, 395), box("image", 200, 300, 290, 390), box("text", 205, 305, 285, 385)]
    kept = [(b.label, b.coordinate) for b in filter_overlap_boxes(boxes)]
    assert kept == [("text", (0, 300, 100, 400)), ("image", (200, 300, 290, 390)), ("text", (205, 305, 285, 385))]


def test_filter_drops_inline_formula_inside_text():
    boxes = [box("text", 0, 0, 200, 50), box("inline_formula", 10, 10, 60, 40)]
    assert [b.label for b in filter_overlap_boxes(boxes)] == ["text"]


def test_prompts_and_pixels_per_label():
    page = white()
    page[50:60, 20:80] = 0  # ink for the formula's margin crop
    boxes = [box("text", 0, 0, 100, 40), box("table", 0, 100, 200, 200), box("display_formula", 0, 45, 100, 70),
             box("chart", 0, 210, 100, 260), box("image", 0, 270, 100, 330), box("seal", 150, 270, 250, 330),
             box("formula_number", 110, 45, 140, 70)]
    plan = plan_page(page, boxes, PlanOptions(merge_layout_blocks=False))
    sent = {b.label: (b.prompt, b.min_pixels, b.max_pixels) for b in plan.blocks if b.needs_model}
    assert sent == {
        "text": ("OCR:", 112896, 1003520), "table": ("Table Recognition:", 112896, 1003520),
        "display_formula": ("Formula Recognition:", 112896, 1003520), "formula_number": ("OCR:", 112896, 1003520),
    }
    formula = next(b for b in plan.blocks if b.label == "display_formula")
    assert formula.image.shape[:2] == (28, 60)  # ink is 10x60, then padded to the 28 px minimum
    assert formula.warning == "crop 60x10 px padded to 60x28"


def test_chart_seal_and_image_switches_and_v1_profile():
    boxes = [box("chart", 0, 0, 100, 100), box("seal", 0, 150, 100, 250), box("image", 150, 0, 250, 100)]
    opts = PlanOptions(use_chart_recognition=True, use_seal_recognition=True, use_ocr_for_image_block=True,
                       pixel_profile="v1", kind_pixels={"seal": (100000, 200000)})
    sent = {b.label: (b.prompt, b.min_pixels, b.max_pixels) for b in plan_page(white(), boxes, opts).blocks}
    assert sent == {"chart": ("Chart Recognition:", 147384, 2822400), "seal": ("Seal Recognition:", 100000, 200000),
                    "image": ("OCR:", 147384, 2822400)}


def test_stacked_text_blocks_touching_a_table_merge_into_one_call():
    boxes = [box("text", 10, 10, 110, 40), box("text", 10, 45, 150, 75), box("table", 120, 10, 290, 90)]
    plan = plan_page(white(), boxes)
    first, second = plan.blocks[0], plan.blocks[1]
    assert (first.group_id, second.group_id) == (0, 0)
    assert first.image.shape[:2] == (60, 140) and first.prompt == "OCR:"  # 30 + 30 rows, widest 140
    assert second.image is None and not second.needs_model
    assert [b.label for b in plan.blocks] == ["text", "text", "table"]


def test_figure_inside_table_is_tokenized_and_dropped_from_blocks():
    boxes = [box("table", 0, 0, 300, 300), box("image", 50, 50, 150, 150)]
    plan = plan_page(white(), boxes)
    table = plan.blocks[0]
    assert list(table.figure_token_map.values()) == ["imgs/img_in_image_box_50_50_150_150.jpg"]
    assert plan.dropped_figures == {"imgs/img_in_image_box_50_50_150_150.jpg"}
    assert (table.image[50:150, 50:150] < 255).any()  # the token was painted


def test_layout_off_reads_whole_page_with_prompt_label():
    assert whole_page_box(300, 400, check_prompt_label(None)).coordinate == (0, 0, 300, 400)
    plan = plan_page(white(), [whole_page_box(300, 400, "formula")])
    assert plan.blocks[0].prompt == "Formula Recognition:"
    with pytest.raises(ValueError, match="promptLabel must be one of"):
        check_prompt_label("poem")


def test_guards_pad_thin_crops_and_pad_or_skip_extreme_aspect_ratios():
    img, warning = guard_image(np.zeros((3, 5, 3), np.uint8), PlanOptions())
    assert img.shape == (28, 28, 3) and warning == "crop 5x3 px padded to 28x28"
    assert img[0, 0].tolist() == [255, 255, 255] and img[12, 11].tolist() == [0, 0, 0]
    long = np.zeros((28, 28 * 500, 3), np.uint8)
    padded, warning = guard_image(long, PlanOptions())
    assert padded.shape == (70, 14000, 3) and "aspect ratio 500" in warning
    skipped, warning = guard_image(long, PlanOptions(extreme_aspect="skip"))
    assert skipped is None and warning.endswith("skipped")


def test_guarded_block_is_not_sent_when_skipped():
    page = np.full((40, 6000, 3), 255, np.uint8)  # 6000x10, padded to 6000x28: ratio 214
    plan = plan_page(page, [box("text", 0, 0, 6000, 10)], PlanOptions(extreme_aspect="skip"))
    assert not plan.blocks[0].needs_model and "skipped" in plan.blocks[0].warning


def test_crop_margin_finds_the_ink():
    img = white(50, 80)
    img[10:20, 30:45] = 0
    assert crop_margin(img).shape == (10, 15, 3)
    assert crop_margin(white(5, 5)).shape == (5, 5, 3)  # a blank crop stays whole


def test_plan_options_validation():
    with pytest.raises(ValidationError, match="must not exceed"):
        PlanOptions(min_pixels=5000, max_pixels=100)
    with pytest.raises(ValidationError):
        PlanOptions(kind_pixels={"poem": (1, 2)})


def test_plans_are_picklable():
    plan = plan_page(white(), [box("text", 10, 10, 110, 40)])
    clone = pickle.loads(pickle.dumps(plan))
    assert np.array_equal(clone.blocks[0].image, plan.blocks[0].image)


def test_boxes_outside_the_page_are_skipped_with_a_warning():
    plan = plan_page(white(100, 100), [box("display_formula", 10, 150, 90, 190), box("text", 10, 10, 90, 40)])
    outside = plan.blocks[0]
    assert not outside.needs_model and "outside the 100x100 page" in outside.warning
    assert plan.blocks[1].needs_model
