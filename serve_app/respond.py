"""Page results → the API's ``layoutParsingResults`` entries (JSON, Markdown, Base64 images)."""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
from PIL import Image

from deployments.datamodel import PageImage, PageResult
from serve_app.assemble import page_markdown, pruned_result, visualize


def jpeg_b64(image, max_side: int) -> str:
    """Base64 JPEG, downscaled to fit ``max_side`` (PaddleX's max_output_img_size)."""
    pil = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image))
    if max(pil.size) > max_side:
        pil = pil.copy()
        pil.thumbnail((max_side, max_side))
    buf = io.BytesIO()
    pil.convert("RGB").save(buf, format="JPEG", quality=90)
    return base64.b64encode(buf.getvalue()).decode()


@dataclass(slots=True)
class PageOutput:
    """One page's result with its images already encoded (the arrays are dropped early, so a
    long document does not keep every page in memory)."""

    result: PageResult
    markdown_images: dict[str, str] = field(default_factory=dict)
    output_images: Optional[dict[str, str]] = None
    input_image: Optional[str] = None


def encode_page(page: Optional[PageImage], result: PageResult, visualize_page: bool, markdown_images: bool,
                max_side: int) -> PageOutput:
    out = PageOutput(result)
    if markdown_images:
        out.markdown_images = {path: jpeg_b64(img, max_side) for path, img in result.images.items()}
    if visualize_page and page is not None and page.error is None and result.ok:
        out.output_images = {k: jpeg_b64(v, max_side) for k, v in visualize(page.image, result).items()}
        out.input_image = jpeg_b64(page.image, max_side)
    result.images = {}
    return out


def page_entry(out: PageOutput, pretty: bool, show_formula_number: bool, markdown_images: bool) -> dict:
    result = out.result
    entry = {
        "prunedResult": pruned_result(result),
        "markdown": {"text": page_markdown(result, pretty, show_formula_number) if result.ok else "",
                     "images": out.markdown_images if markdown_images else None},
        "status": "ok" if result.ok else "failed",
    }
    if out.output_images is not None:
        entry["outputImages"] = out.output_images
        entry["inputImage"] = out.input_image
    if result.error is not None:
        entry["error"] = {"stage": result.error.stage, "kind": result.error.kind, "message": result.error.message}
    return entry
