"""From planned blocks and raw model outputs to a :class:`PageResult` (PaddleX assembly rules).

Image-like blocks become Markdown images; figures that were tokenized into a table leave the
page's block list and reappear as ``<img>`` tags inside the table.
"""

from __future__ import annotations

from typing import Mapping, Optional

from deployments.datamodel import BlockResult, LayoutBox, PageResult
from deployments.labels import image_path
from deployments.recognizer.options import PlanOptions
from deployments.recognizer.planning import PagePlan
from deployments.recognizer.table_figures import untokenize_figures
from deployments.recognizer.textpost import postprocess_block_text


def build_page_result(
    plan: PagePlan,
    outputs: Mapping[int, Optional[str]],
    *,
    page_index: int,
    width: int,
    height: int,
    layout_boxes: list[LayoutBox],
    options: Optional[PlanOptions] = None,
    page_count: Optional[int] = None,
    details: Optional[Mapping[int, tuple[int, str]]] = None,
    sources: Optional[Mapping[int, str]] = None,
) -> PageResult:
    """Assemble one page. ``outputs`` maps planned block index → raw model text, ``details``
    (optional) → (generated tokens, finish reason), ``sources`` → where a text came from when not
    from the engine (e.g. "text_layer")."""
    options = options or PlanOptions()
    image_labels = options.image_block_labels()
    page = PageResult(page_index=page_index, width=width, height=height, page_count=page_count,
                      layout_boxes=layout_boxes, recognized_as_images=options.image_fallback)
    content_by_path: dict[str, str] = {}
    tables: list[tuple[BlockResult, dict]] = []
    for block in plan.blocks:
        result = BlockResult(label=block.label, bbox=block.bbox, group_id=block.group_id, warning=block.warning,
                             polygon_points=block.polygon_points)
        if block.needs_model:
            crop_size = (block.crop.shape[1], block.crop.shape[0]) if block.crop is not None else None
            result.content, spotting, warning = postprocess_block_text(outputs.get(block.index), block.label, crop_size)
            result.warning = warning or result.warning
            if details and block.index in details:
                result.num_tokens, result.finish_reason = details[block.index]
            result.source = (sources or {}).get(block.index)
            page.spotting_res = spotting or page.spotting_res
        if block.label == "table":
            tables.append((result, block.figure_token_map))
        if block.label in image_labels and block.crop is not None:
            path = image_path(block.label, block.bbox)
            content_by_path[path] = result.content
            if path in plan.dropped_figures:
                continue
            result.image_path = path
            page.images[path] = block.crop
        page.blocks.append(result)
    for result, token_map in tables:
        result.content = untokenize_figures(result.content, token_map, content_by_path.get)
    for fig in plan.doc_images:
        page.images[fig["path"]] = fig["crop"]
    return page
