"""PP-DocLayoutV2 label set and the official "v1" pipeline defaults (PaddleX PaddleOCR-VL.yaml).

Everything here is data; the rules that use it live in ``deployments.layout.postprocess`` and
``deployments.recognizer.planning``.
"""

from __future__ import annotations

#: The 25 PP-DocLayoutV2 classes, in class-id order.
PP_DOCLAYOUT_V2_LABELS: tuple[str, ...] = (
    "abstract", "algorithm", "aside_text", "chart", "content", "display_formula",
    "doc_title", "figure_title", "footer", "footer_image", "footnote", "formula_number",
    "header", "header_image", "image", "inline_formula", "number", "paragraph_title",
    "reference", "reference_content", "seal", "table", "text", "vertical_text",
    "vision_footnote",
)

_LOW = {"display_formula", "doc_title", "inline_formula", "paragraph_title", "text", "vertical_text"}
_LARGE = {"chart", "display_formula", "doc_title", "inline_formula", "paragraph_title"}

#: v1 per-class score thresholds (0.4 for text-like classes, 0.45 for seal, 0.5 otherwise).
V1_THRESHOLDS: dict[int, float] = {
    i: (0.4 if name in _LOW else 0.45 if name == "seal" else 0.5)
    for i, name in enumerate(PP_DOCLAYOUT_V2_LABELS)
}

#: v1 per-class merge modes: "large" drops boxes contained in another box of that class.
V1_MERGE_MODES: dict[int, str] = {
    i: ("large" if name in _LARGE else "union") for i, name in enumerate(PP_DOCLAYOUT_V2_LABELS)
}

#: Labels whose boxes get ``order=None`` in the layout result and ``block_order=None``
#: in ``parsing_res_list`` (PaddleX ``SKIP_ORDER_LABELS``).
SKIP_ORDER_LABELS: tuple[str, ...] = (
    "figure_title", "vision_footnote", "image", "chart", "table", "header",
    "header_image", "footer", "footer_image", "footnote", "aside_text",
)

#: v1 ``markdown_ignore_labels``: recognised, kept in JSON, left out of Markdown.
V1_MARKDOWN_IGNORE_LABELS: tuple[str, ...] = (
    "number", "footnote", "header", "header_image", "footer", "footer_image", "aside_text",
)

#: Labels that are always images (never sent to the model unless ``use_ocr_for_image_block``).
IMAGE_LABELS: tuple[str, ...] = ("image", "header_image", "footer_image")

#: Labels gathered as page images (``imgs_in_doc``): figures inside tables, Markdown images.
DOC_IMAGE_LABELS: tuple[str, ...] = ("image", "figure", "seal")

#: ``prompt_label`` values accepted when layout detection is off.
PROMPT_LABELS: tuple[str, ...] = ("ocr", "formula", "table", "chart", "seal", "spotting")

#: Exact task prompts of PaddleOCR-VL (the only text sent with each crop).
PROMPTS: dict[str, str] = {
    "ocr": "OCR:",
    "table": "Table Recognition:",
    "formula": "Formula Recognition:",
    "chart": "Chart Recognition:",
    "seal": "Seal Recognition:",
    "spotting": "Spotting:",
}


def image_path(label: str, bbox) -> str:
    """Markdown image path of a block, ``imgs/img_in_{label}_box_{x1}_{y1}_{x2}_{y2}.jpg``."""
    x1, y1, x2, y2 = (int(v) for v in bbox)
    return f"imgs/img_in_{label}_box_{x1}_{y1}_{x2}_{y2}.jpg"
