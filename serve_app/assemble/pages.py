"""Document-level assembly: restructure pages, rebuild pages from ``prunedResult`` JSON."""

from __future__ import annotations

import copy
import re
from dataclasses import replace
from typing import Any, Optional

from deployments.datamodel import BlockResult, LayoutBox, PageResult
from deployments.labels import image_path
from serve_app.assemble.restructure import merge_tables_across_pages
from serve_app.assemble.titles import assign_title_levels


def restructure_pages(
    pages: list[PageResult], merge_tables: bool = True, relevel_titles: bool = True, concatenate: bool = False,
    use_layout: bool = True,
) -> list[PageResult]:
    """Merge tables continued across pages, re-level titles, optionally make one result.

    The input pages are not modified. Every block gets ``global_block_id``/``global_group_id``
    (a merged table's continuation points to the table it was merged into).
    """
    pages = [replace(p, blocks=[copy.copy(b) for b in p.blocks]) for p in pages]
    gid = 0
    for page in pages:
        for block in page.blocks:
            block.global_block_id = block.global_group_id = gid
            gid += 1
    by_page = [p.blocks for p in pages]
    if merge_tables:
        merge_tables_across_pages(by_page)
    if relevel_titles:
        assign_title_levels(by_page)
    if not concatenate or not pages:
        return pages
    first = pages[0]
    images: dict = {}
    for p in pages:
        images.update(p.images)
    layout = [p.layout_boxes for p in pages] if use_layout else None
    return [replace(first, blocks=[b for p in pages for b in p.blocks], page_count=len(pages),
                    images=images, layout_pages=layout)]


def _image_path_of(block: dict[str, Any], settings: dict[str, Any]) -> Optional[str]:
    label = block["block_label"]
    if label in ("image", "seal") or (label == "chart" and not settings.get("use_chart_recognition", False)):
        return image_path(label, block["block_bbox"])
    return None


def page_from_pruned(pruned: dict[str, Any], page_index: int = 0) -> PageResult:
    """Rebuild a page from its ``prunedResult`` (the ``/restructure-pages`` input).

    Titles lose their Markdown ``#`` prefix, image blocks get their path back from the bbox.
    """
    settings = dict(pruned.get("model_settings") or {})
    blocks = [
        BlockResult(
            label=b["block_label"], bbox=tuple(int(v) for v in b["block_bbox"]),
            content=re.sub(r"^#+\s", "", b.get("block_content") or ""),
            group_id=b.get("group_id"), image_path=_image_path_of(b, settings), source=b.get("block_source"),
            polygon_points=b.get("block_polygon_points"),
        )
        for b in pruned.get("parsing_res_list") or []
    ]
    layout = pruned.get("layout_det_res") or {}
    boxes = [
        LayoutBox(int(b["cls_id"]), b["label"], float(b["score"]), tuple(int(v) for v in b["coordinate"]), b.get("order"),
                  b.get("polygon_points"))
        for b in (layout.get("boxes") if isinstance(layout, dict) else []) or []
    ]
    return PageResult(page_index=page_index, width=int(pruned["width"]), height=int(pruned["height"]),
                      page_count=pruned.get("page_count"), layout_boxes=boxes, blocks=blocks,
                      recognized_as_images=tuple(settings.get("recognized_as_images") or ()),
                      spotting_res=pruned.get("spotting_res") or {},
                      angle=(pruned.get("doc_preprocessor_res") or {}).get("angle"))
