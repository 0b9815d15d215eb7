"""The ``prunedResult`` JSON of a page (PaddleX ``_to_json`` minus input_path/page_index)."""

from __future__ import annotations

from typing import Any, Optional

from deployments.datamodel import PageResult, polygon_json
from deployments.labels import SKIP_ORDER_LABELS
from serve_app.assemble.markdown import handlers
from serve_app.options import ParseOptions


def parsing_res_list(page: PageResult, options: ParseOptions) -> list[dict[str, Any]]:
    """Blocks in output order with id, reading order (None for skipped labels) and group."""
    skip = set(SKIP_ORDER_LABELS) | set(options.markdown.ignored)
    funcs = handlers(options, page, pretty=True) if options.markdown.format_block_content else None
    out, order = [], 1
    for idx, block in enumerate(page.blocks):
        entry: dict[str, Any] = {
            "block_label": block.label,
            "block_content": block.content,
            "block_bbox": list(block.bbox),
            "block_id": idx,
            "block_order": None if block.label in skip else order,
            "group_id": block.group_id if block.group_id is not None else idx,
        }
        order += 0 if block.label in skip else 1
        if block.global_block_id is not None:
            entry["global_block_id"] = block.global_block_id
        if block.global_group_id is not None:
            entry["global_group_id"] = block.global_group_id
        if block.polygon_points is not None:
            entry["block_polygon_points"] = polygon_json(block.polygon_points)
        if block.source is not None:  # only where not read by the engine: the official output is unchanged
            entry["block_source"] = block.source
        if funcs is not None:
            func = funcs.get(block.label)
            entry["block_content"] = func(block) if func else block.content
        out.append(entry)
    return out


def pruned_result(page: PageResult, options: Optional[ParseOptions] = None) -> dict[str, Any]:
    """``{page_count, width, height, model_settings, parsing_res_list, [spotting_res], layout_det_res}``."""
    options = options or ParseOptions()
    data: dict[str, Any] = {
        "page_count": page.page_count,
        "width": page.width,
        "height": page.height,
        "model_settings": options.report(page),
    }
    if page.angle is not None:  # useDocOrientationClassify, as PaddleX reports its doc preprocessor
        data["doc_preprocessor_res"] = {
            "model_settings": {"use_doc_orientation_classify": True, "use_doc_unwarping": False}, "angle": page.angle}
    data["parsing_res_list"] = parsing_res_list(page, options)
    if page.spotting_res:
        data["spotting_res"] = page.spotting_res
    if options.use_layout:
        if page.layout_pages is not None:
            data["layout_det_res"] = [{"boxes": [b.to_json() for b in boxes]} for boxes in page.layout_pages]
        else:
            data["layout_det_res"] = {"boxes": [box.to_json() for box in page.layout_boxes]}
    return data
