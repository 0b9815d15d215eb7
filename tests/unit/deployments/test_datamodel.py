"""The objects crossing stages are small, typed and picklable; failed pages are data."""

import pickle

import numpy as np

from deployments.datamodel import BlockResult, DocumentResult, LayoutBox, PageError, PageImage, PageResult, PageStatus


def test_page_image_round_trips_through_pickle():
    page = PageImage("doc", 0, 3, np.zeros((20, 10, 3), np.uint8), scale=2.0)
    clone = pickle.loads(pickle.dumps(page))
    assert (clone.width, clone.height, clone.scale, clone.page_count) == (10, 20, 2.0, 3)


def test_document_status_reports_failed_pages_without_losing_others():
    ok = PageResult(0, 100, 100, blocks=[BlockResult("text", (0, 0, 1, 1), "hi")])
    bad = PageResult(1, 100, 100, status=PageStatus.FAILED,
                     error=PageError("render", "corrupt_page", "page 2 cannot be rendered; re-save the PDF"))
    doc = pickle.loads(pickle.dumps(DocumentResult("d", "a.pdf", [ok, bad])))
    assert doc.status == "partial" and doc.failed_pages == [1]
    assert doc.pages[0].blocks[0].content == "hi" and doc.pages[1].error.kind == "corrupt_page"
    assert DocumentResult("d", "a.pdf", [bad]).status == "failed"
    assert DocumentResult("d", "a.pdf", [ok]).status == "ok"


def test_layout_box_json_matches_paddlex_keys():
    box = LayoutBox(22, "text", 0.5, (1, 2, 3, 4), 7)
    assert box.to_json() == {"cls_id": 22, "label": "text", "score": 0.5, "coordinate": [1, 2, 3, 4], "order": 7}
