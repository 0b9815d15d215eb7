"""Golden tests of layout post-processing, each rule with a hand-computed expectation."""

import numpy as np
import pytest
from pydantic import ValidationError

from deployments.layout.options import LayoutOptions
from deployments.layout.postprocess import nms, postprocess_layout

TEXT, IMAGE, TITLE, TABLE = 22, 14, 17, 21


def run(rows, size=(1000, 1000), **opts):
    return [(b.label, b.coordinate, b.order) for b in postprocess_layout(np.array(rows, float), size, LayoutOptions(**opts))]


def test_v1_thresholds_are_per_class():
    rows = [[TEXT, 0.45, 0, 0, 100, 100, 1], [TABLE, 0.45, 200, 200, 300, 300, 2]]
    assert run(rows) == [("text", (0, 0, 100, 100), 1)]  # text needs > 0.4, table > 0.5


def test_float_threshold_applies_to_every_class():
    rows = [[TEXT, 0.45, 0, 0, 100, 100, 1], [TABLE, 0.45, 200, 200, 300, 300, 2]]
    assert [r[0] for r in run(rows, threshold=0.3)] == ["text", "table"]


def test_nms_same_class_at_0_6_other_class_at_0_98():
    same = np.array([[TEXT, 0.9, 0, 0, 100, 100], [TEXT, 0.8, 0, 10, 100, 110]], float)
    assert nms(same) == [0]  # IoU (101*91)/(101*111) = 0.82 >= 0.6
    other = np.array([[TEXT, 0.9, 0, 0, 100, 100], [TITLE, 0.8, 0, 10, 100, 110]], float)
    assert nms(other) == [0, 1]  # 0.82 < 0.98


def test_reading_order_column_sorts_and_skip_labels_get_no_order():
    rows = [[TEXT, 0.9, 0, 500, 100, 600, 3], [TABLE, 0.9, 0, 300, 100, 400, 2], [TITLE, 0.9, 0, 0, 100, 50, 1]]
    assert run(rows) == [("paragraph_title", (0, 0, 100, 50), 1), ("table", (0, 300, 100, 400), None),
                         ("text", (0, 500, 100, 600), 2)]


def test_votes_break_order_ties_most_votes_first():
    rows = [[TEXT, 0.9, 0, 0, 10, 10, 1, 2.0], [TEXT, 0.9, 0, 100, 10, 110, 1, 5.0]]
    assert [r[1] for r in run(rows)] == [(0, 100, 10, 110), (0, 0, 10, 10)]


def test_large_image_filter_keeps_other_boxes():
    rows = [[IMAGE, 0.9, 0, 0, 1000, 950, 1], [TEXT, 0.9, 10, 10, 100, 100, 2]]
    assert [r[0] for r in run(rows)] == ["text"]  # 95% of a square page > 93%
    assert [r[0] for r in run(rows[:1])] == ["image"]  # never leaves a page empty


def test_large_image_threshold_is_82_percent_on_landscape_pages():
    rows = [[IMAGE, 0.9, 0, 0, 1000, 450, 1], [TEXT, 0.9, 10, 460, 100, 490, 2]]
    assert [r[0] for r in run(rows, size=(1000, 500))] == ["text"]  # 90% > 82%


def test_merge_mode_large_drops_contained_box_of_that_class():
    rows = [[TITLE, 0.9, 0, 0, 200, 50, 1], [TITLE, 0.9, 10, 5, 100, 45, 2]]
    assert [r[1] for r in run(rows, nms=False)] == [(0, 0, 200, 50)]
    assert len(run(rows, nms=False, merge_bboxes_mode="union")) == 2
    assert [r[1] for r in run(rows, nms=False, merge_bboxes_mode="small")] == [(10, 5, 100, 45)]


def test_unclip_scales_around_centre_then_clamps():
    rows = [[TEXT, 0.9, 100, 100, 200, 150, 1], [TEXT, 0.9, 950, 0, 1000, 20, 2]]
    assert [r[1] for r in run(rows, unclip_ratio=(2.0, 1.0))] == [(50, 100, 250, 150), (925, 0, 1000, 20)]
    assert [r[1] for r in run(rows[:1], unclip_ratio={TEXT: (1.0, 2.0)})] == [(100, 75, 200, 175)]


def test_degenerate_boxes_are_dropped_and_empty_input_is_empty():
    assert run([[TEXT, 0.9, 100, 100, 100, 150, 1]]) == []
    assert postprocess_layout(np.zeros((0, 7)), (10, 10)) == []


@pytest.mark.parametrize("bad", [{"threshold": 1.5}, {"unclip_ratio": (1.0,)}, {"unclip_ratio": -1.0},
                                 {"merge_bboxes_mode": "biggest"}, {"nms_iou": 0.5}])
def test_invalid_options_are_rejected(bad):
    with pytest.raises(ValidationError):
        LayoutOptions(**bad)
