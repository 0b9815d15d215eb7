"""Page results → the API's ``layoutParsingResults`` entries (JSON, Markdown, Base64 images)."""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass, field, replace
from typing import Optional

import numpy as np
from PIL import Image

from deployments.datamodel import PageError, PageImage, PageResult, PageStatus
from serve_app.assemble import PageText, assemble_document, page_from_pruned, visualize
from serve_app.options import ParseOptions


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


def encode_page(page: PageImage, result: PageResult, options: ParseOptions, max_side: int) -> PageOutput:
    out = PageOutput(result.without_images())
    if options.markdown_images:
        out.markdown_images = {path: jpeg_b64(img, max_side) for path, img in result.images.items()}
    if options.visualize and page.error is None and result.ok:
        images = visualize(page.image, result, options.use_layout)
        out.output_images = {k: jpeg_b64(v, max_side) for k, v in images.items()}
        out.input_image = jpeg_b64(page.image, max_side)
    return out


def document_entries(pages: list[PageOutput], options: ParseOptions) -> list[dict]:
    """The ``layoutParsingResults`` of a document (the shape of ``protocol.LayoutParsingResult``)."""
    texts = assemble_document([p.result for p in pages], options)
    return [page_entry(out, text, options) for out, text in zip(pages, texts)]


def finished_page_entry(out: PageOutput, options: ParseOptions) -> dict:
    """A page's entry as soon as that page is done (streams, jobs): its ``document_entries`` item
    for a document that is not restructured; restructuring, which needs every page, is left out."""
    if options.restructure.enabled:
        options = options.model_copy(update={"restructure": options.restructure.model_copy(update={"enabled": False})})
    return page_entry(out, assemble_document([out.result], options)[0], options)


def saved_page_output(entry: dict, page_index: int) -> PageOutput:
    """A page back from its entry (a resumed job's pages finished before a restart), for restructuring."""
    result = page_from_pruned(entry["prunedResult"], page_index)
    if entry.get("status") == "failed":
        error = entry.get("error") or {}
        result = replace(result, status=PageStatus.FAILED, error=PageError.of(
            error.get("stage", "pipeline"), error.get("kind", "internal_error"), error.get("message", "")))
    return PageOutput(result, entry["markdown"].get("images") or {}, entry.get("outputImages"), entry.get("inputImage"))


def text_entry(text: PageText, images: Optional[dict[str, str]]) -> dict:
    """A page of ``/restructure-pages``: its ``prunedResult`` and Markdown (no status: the pages
    were parsed before)."""
    return {"prunedResult": text.pruned, "markdown": {"text": text.markdown, "images": images}}


def page_entry(out: PageOutput, text: PageText, options: ParseOptions) -> dict:
    entry = {
        "prunedResult": text.pruned,
        "markdown": {"text": text.markdown, "images": out.markdown_images if options.markdown_images else None},
        "status": "ok" if text.ok else "failed",
    }
    if out.output_images is not None:
        entry["outputImages"] = out.output_images
        entry["inputImage"] = out.input_image
    if text.error is not None:
        entry["error"] = {"stage": text.error.stage, "kind": text.error.kind, "message": text.error.message}
    return entry
