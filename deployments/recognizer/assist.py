"""What the recognizer does beside its engine: text blocks and tables read from a PDF's own text
layer, and, for best-effort engines (lite), layout boxes fixed before planning. Pure functions of
the page and its plan; the recognizer decides when they apply (``textLayer``, the engine)."""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np

from deployments.datamodel import LayoutBox, PageImage
from deployments.labels import IMAGE_LABELS, PP_DOCLAYOUT_V2_LABELS, PROMPTS
from deployments.recognizer.lite_tables import is_ruled, table_otsl
from deployments.recognizer.planning import PagePlan
from deployments.textlayer import assign_words, block_text, fit_to_ink

log = logging.getLogger(__name__)
TEXT_CLS = PP_DOCLAYOUT_V2_LABELS.index("text")
BIG_BOX = 0.5  # share of the page
FORMULA_LIKE = ("display_formula", "inline_formula", "chart")
NOT_TEXT = (*FORMULA_LIKE, *IMAGE_LABELS, "table", "seal", "figure")


def best_effort_boxes(page: PageImage, boxes: list[LayoutBox]) -> list[LayoutBox]:
    """What a best-effort engine reads beyond the official pipeline: a page where layout found
    nothing is read whole; a box over half the page or more that the engine would return as an
    image though it holds text is read as text (a formula or chart box, a table box without ruling
    lines such as a newspaper's columns or an exam sheet, a figure box with 20+ words of text
    layer); text boxes that cut the first letters of lines are widened to their ink."""
    if not boxes:
        return [LayoutBox(TEXT_CLS, "text", 1.0, (0, 0, page.width, page.height), 1)]
    out, page_area = [], page.width * page.height
    for box in boxes:
        x0, y0, x1, y1 = box.coordinate
        if (x1 - x0) * (y1 - y0) >= BIG_BOX * page_area and _holds_text(page, box):
            log.debug("page %s: %s box over most of the page read as text", page.page_index, box.label)
            box = replace(box, label="text", cls_id=TEXT_CLS)
        if box.label not in NOT_TEXT:
            box = replace(box, coordinate=fit_to_ink(page.image, box.coordinate))
        out.append(box)
    return out


def _holds_text(page: PageImage, box: LayoutBox) -> bool:
    x0, y0, x1, y1 = box.coordinate
    if box.label in FORMULA_LIKE:
        return True
    if box.label == "table":
        return not is_ruled(page.image[y0:y1, x0:x1])
    if box.label in IMAGE_LABELS and page.text_layer is not None:
        return len(assign_words(page.text_layer, [box.coordinate])[0]) >= 20
    return False


def texts_from_layer(page: PageImage, plan: PagePlan) -> dict[int, str]:
    """Block index → text (or a table's OTSL) read from the page's text layer; blocks missing here
    go to the engine (``deployments.textlayer`` decides per block). A merged group (its members'
    crops stacked into one image) is read member by member and joined, as the engine reads it."""
    if page.text_layer is None:
        return {}
    # Every block takes part, so that the words of a table or a figure stay out of text blocks.
    owned = dict(zip((b.index for b in plan.blocks), assign_words(page.text_layer, [b.bbox for b in plan.blocks])))
    members: dict[int, list[int]] = {}
    for block in plan.blocks:
        members.setdefault(block.index if block.group_id is None else block.group_id, []).append(block.index)
    out = {}
    for block in plan.blocks:
        if not block.needs_model:
            continue
        if block.prompt == PROMPTS["table"] and block.group_id is None:
            table = _table(page, block.bbox, owned[block.index])
            if table:
                out[block.index] = table
        elif block.prompt == PROMPTS["ocr"]:
            group = members[block.index if block.group_id is None else block.group_id]
            texts = [block_text(page.text_layer, owned[i]) for i in group]
            missing = [reason for text, reason in texts if text is None]
            if missing:
                log.debug("page %s block %s read from pixels: %s", page.page_index, block.index, missing[0])
            else:
                out[block.index] = " ".join(text for text, _ in texts)
    return out


def _table(page: PageImage, bbox, words: np.ndarray) -> str:
    """A table block from the layer's words on the table's grid (OTSL), or "" to read pixels."""
    text, _ = block_text(page.text_layer, words)
    if text is None:
        return ""
    x0, y0, x1, y1 = bbox
    boxes = page.text_layer.boxes[words] - np.array([x0, y0, x0, y0], np.float32)
    return table_otsl(page.image[y0:y1, x0:x1], boxes, [page.text_layer.words[i] for i in words])
