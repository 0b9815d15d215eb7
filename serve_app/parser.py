"""DocumentParser: one document through render → layout → recognize → encode, with a bounded
window of pages in flight. Runs in the ingress replica and talks to the stages by handle."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

from deployments.datamodel import PageError, PageImage, PageResult, PageStatus
from deployments.recognizer.planning import whole_page_box
from deployments.recognizer.recognizer import PageRequest
from deployments.renderer import DocumentInfo, InputError, parse_page_ranges
from serve_app import metrics
from serve_app.config import AppConfig
from serve_app.options import (layout_options, plan_options, prompt_label, request_settings, sampling_options)
from serve_app.protocol import InferRequest
from serve_app.respond import PageOutput, encode_page

log = logging.getLogger("serve_app")
RENDER_CHUNK = 4  # pages per render call: fewer hops, still streaming


class TooManyPages(ValueError):
    """The document exceeds ``ingress.max_pages`` (422, never a silent truncation)."""


@dataclass(slots=True)
class ParsedDocument:
    info: DocumentInfo
    page_indices: list[int]
    pages: list[PageOutput]


class DocumentParser:
    def __init__(self, renderer, layout, recognizer, config: AppConfig):
        self.renderer, self.layout, self.recognizer, self.config = renderer, layout, recognizer, config

    async def parse(self, data: bytes, kind: str, req: InferRequest, log_id: str, visualize: bool) -> ParsedDocument:
        import ray

        ref = ray.put(data)
        info = await self.renderer.inspect.remote(ref, kind)
        if not isinstance(info, DocumentInfo):
            raise InputError(info.kind, info.message)
        indices = parse_page_ranges(req.pageRanges, info.page_count)
        limit = self.config.ingress.max_pages
        if limit is not None and len(indices) > limit:
            raise TooManyPages(f"the document has {len(indices)} pages to parse but this server accepts at most {limit} "
                               "(ingress.max_pages); split it or send pageRanges")
        context = self._context(req, visualize)
        window = asyncio.Semaphore(self.config.ingress.page_window)
        chunks = [indices[i : i + RENDER_CHUNK] for i in range(0, len(indices), RENDER_CHUNK)]
        results = await asyncio.gather(*(self._chunk(ref, log_id, kind, c, context, window) for c in chunks))
        pages = [page for chunk in results for page in chunk]
        log.info("[%s] parsed %d pages (%d failed)", log_id, len(pages), sum(not p.result.ok for p in pages))
        return ParsedDocument(info, indices, pages)

    def _context(self, req: InferRequest, visualize: bool) -> dict[str, Any]:
        cfg = self.config
        plan = plan_options(req, cfg.recognizer.plan)
        return {
            "layout": layout_options(req, cfg.layout.options), "use_layout": req.useLayoutDetection is not False,
            "prompt_label": prompt_label(req),
            "request": PageRequest(plan=plan, sampling=sampling_options(req), model_settings=request_settings(req, plan)),
            "visualize": visualize, "markdown_images": req.returnMarkdownImages,
        }

    async def _chunk(self, ref, log_id, kind, indices, context, window) -> list[PageOutput]:
        async with window:
            start = time.perf_counter()
            pages: list[PageImage] = await self.renderer.render.remote(ref, log_id, kind, indices)
            metrics.observe("stage_seconds", time.perf_counter() - start, stage="render")
            return list(await asyncio.gather(*(self._page(p, context) for p in pages)))

    async def _page(self, page: PageImage, context: dict[str, Any]) -> PageOutput:
        request: PageRequest = context["request"]
        try:
            if page.error is not None:
                result = PageResult(page.page_index, page.width, page.height, PageStatus.FAILED, page.error,
                                    page.page_count, model_settings=request.model_settings)
            else:
                result = await self._read(page, context)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - one page's failure must not fail the document
            result = PageResult(page.page_index, page.width, page.height, PageStatus.FAILED, _page_error(page, exc),
                                page.page_count, model_settings=request.model_settings)
        self._count(result)
        return encode_page(page, result, context["visualize"], context["markdown_images"],
                           self.config.ingress.max_output_image_side)

    async def _read(self, page: PageImage, context: dict[str, Any]) -> PageResult:
        start = time.perf_counter()
        if context["use_layout"]:
            boxes = await self.layout.detect.remote(page, context["layout"])
            metrics.observe("stage_seconds", time.perf_counter() - start, stage="layout")
        else:
            boxes = [whole_page_box(page.width, page.height, context["prompt_label"])]
        start = time.perf_counter()
        result = await self.recognizer.recognize.remote(page, boxes, context["request"])
        metrics.observe("stage_seconds", time.perf_counter() - start, stage="recognize")
        if not context["use_layout"]:
            result.layout_boxes = []
        return result

    @staticmethod
    def _count(result: PageResult) -> None:
        metrics.count("pages", status=result.status.value)
        if result.error is not None:
            metrics.count("errors", kind=result.error.kind)
        metrics.count("blocks", len(result.blocks))
        tokens = sum(b.num_tokens for b in result.blocks)
        if tokens:
            metrics.count("tokens", tokens)


def _page_error(page: PageImage, exc: Exception) -> PageError:
    """A stage's exception as page data: overload and lost replicas are named as such."""
    name = type(exc).__name__
    if "BackPressure" in name:
        return PageError("pipeline", "overloaded", f"page {page.page_index + 1}: a stage's queue is full "
                         "(max_queued_requests); retry the document later or add replicas")
    if "ActorDied" in name or "ActorUnavailable" in name or "Unavailable" in name:
        return PageError("pipeline", "replica_lost", f"page {page.page_index + 1}: the replica serving it stopped "
                         f"({name}); retry the document")
    log.exception("page %s failed", page.page_index)
    return PageError("pipeline", "internal_error", f"page {page.page_index + 1} failed: {name}: {exc}")


def data_info(doc: ParsedDocument) -> dict[str, Any]:
    """PaddleX ``dataInfo``: image → {width, height, type}; PDF → {numPages, pages, type}."""
    if doc.info.kind == "image":
        width, height = doc.info.page_sizes[0]
        return {"width": width, "height": height, "type": "image"}
    pages = [{"width": doc.info.page_sizes[i][0], "height": doc.info.page_sizes[i][1]} for i in doc.page_indices]
    return {"numPages": len(pages), "pages": pages, "type": "pdf"}


