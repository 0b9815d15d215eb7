"""The ``model_settings`` object reported with every page (PaddleX field names and defaults)."""

from __future__ import annotations

from typing import Optional, Sequence

from deployments.labels import V1_MARKDOWN_IGNORE_LABELS


def model_settings(
    *,
    use_layout_detection: bool = True,
    use_chart_recognition: bool = False,
    use_seal_recognition: bool = False,
    use_ocr_for_image_block: bool = False,
    format_block_content: bool = False,
    merge_layout_blocks: bool = True,
    markdown_ignore_labels: Optional[Sequence[str]] = None,
    layout_shape_mode: str = "auto",
) -> dict:
    """Settings as PaddleX reports them; ``return_layout_polygon_points`` is True unless "rect"."""
    return {
        "use_doc_preprocessor": False,
        "use_layout_detection": use_layout_detection,
        "use_chart_recognition": use_chart_recognition,
        "use_seal_recognition": use_seal_recognition,
        "use_ocr_for_image_block": use_ocr_for_image_block,
        "format_block_content": format_block_content,
        "merge_layout_blocks": merge_layout_blocks,
        "markdown_ignore_labels": list(V1_MARKDOWN_IGNORE_LABELS if markdown_ignore_labels is None else markdown_ignore_labels),
        "return_layout_polygon_points": layout_shape_mode != "rect",
    }
