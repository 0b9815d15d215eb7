"""The objects crossing stages are small, typed and picklable; failed pages are data."""

import pickle

import numpy as np

from deployments.datamodel import ErrorKind, LayoutBox, PageError, PageImage, PageResult, PageStatus, Stage


def test_page_image_round_trips_through_pickle():
    page = PageImage("doc", 0, 3, np.zeros((20, 10, 3), np.uint8), scale=2.0)
    clone = pickle.loads(pickle.dumps(page))
    assert (clone.width, clone.height, clone.scale, clone.page_count) == (10, 20, 2.0, 3)


def test_a_failed_page_is_data_that_round_trips_and_writes_its_names():
    import json

    bad = PageResult(1, 100, 100, status=PageStatus.FAILED,
                     error=PageError(Stage.RENDER, ErrorKind.PAGE_RENDER_FAILED, "page 2 cannot be rendered; re-save"))
    clone = pickle.loads(pickle.dumps(bad))
    assert clone.error == bad.error and not clone.ok
    assert json.dumps([clone.error.stage, clone.error.kind]) == '["render", "page_render_failed"]'
    assert f"{clone.error.kind}: {clone.error.message}" == "page_render_failed: page 2 cannot be rendered; re-save"
    assert PageError.of("layout", "layout_failed", "x") == PageError(Stage.LAYOUT, ErrorKind.LAYOUT_FAILED, "x")
    assert PageError.of("gone", "http_503", "x") == PageError(Stage.PIPELINE, ErrorKind.INTERNAL_ERROR, "gone/http_503: x")


def test_layout_box_json_matches_paddlex_keys():
    box = LayoutBox(22, "text", 0.5, (1, 2, 3, 4), 7)
    assert box.to_json() == {"cls_id": 22, "label": "text", "score": 0.5, "coordinate": [1, 2, 3, 4], "order": 7}
