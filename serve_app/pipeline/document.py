"""``DocumentPipeline``: the one owner of a document's life for every caller — open (type, page
ranges, ``max_pages``), render, layout, recognition with retries, a failed page as data, encoding,
the document's deadline and the lost-page rule — through a ``Stages`` transport (``stages.py``).

The rules, each decided here once:
- a page's own failure (it cannot be rendered, the layout model fails on it, the engine fails on
  it) is a failed page with its ``PageError``; the other pages go on;
- a stage call that fails because a replica stopped or its queue was full is tried again per the
  caller's ``Retries``; a page still lost after them is never a page result: the document ends
  with a 503 and ``Retry-After`` (the blocking answer, the stream's ``error`` event, the job's
  status), since the document is fine and another try will read it;
- ``deadlineSeconds`` (``ParseOptions.deadline_s``) is the longest the whole document may take
  from the start of its parsing; each page's recognition gets the time left; past it, a 504.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, replace
from typing import Any, Awaitable, Callable, Optional, Sequence

from deployments.datamodel import PageImage, PageResult, Stage
from deployments.renderer import DocumentInfo, parse_page_ranges
from serve_app import metrics
from serve_app.assemble import PageText
from serve_app.errors import (UNAVAILABLE, StageUnavailable, TooManyPages, classify, deadline_error,
                              lost_pages_error, page_error)
from serve_app.options import ParseOptions
from serve_app.pipeline.pages import layout_input, recognize_with_retries
from serve_app.pipeline.retries import Retries
from serve_app.pipeline.stages import Stages
from serve_app.pipeline.window import PageWindow
from serve_app.respond import PageOutput, encode_page

log = logging.getLogger("serve_app")
RENDER_CHUNK = 4  # pages per render call: fewer hops, still streaming
OnPage = Callable[[PageOutput], Awaitable[None]]


@dataclass(slots=True)
class OpenedDocument:
    """A document stored for the render calls, with the pages to parse selected."""

    ref: Any
    kind: str
    info: DocumentInfo
    page_indices: list[int]


@dataclass(slots=True)
class ParsedDocument:
    info: DocumentInfo
    page_indices: list[int]
    pages: list[PageOutput]


def select_pages(info: DocumentInfo, options: ParseOptions, max_pages: Optional[int] = None) -> list[int]:
    """The 0-based pages to parse (``pageRanges``), within ``max_pages`` (422 beyond it)."""
    indices = parse_page_ranges(options.page_ranges, info.page_count)
    if max_pages is not None and len(indices) > max_pages:
        raise TooManyPages(f"the document has {len(indices)} pages to parse but this server accepts at most "
                           f"{max_pages} (ingress.max_pages); split it or send pageRanges")
    return indices


class DocumentPipeline:
    """``stages``: a transport (``ServeStages``, ``LocalStages``); ``retries``: the caller's policy
    for stage calls (default: the ingress's); ``max_pages``/``max_output_image_side``/
    ``page_window``/``max_pixels_in_flight`` as in ``IngressConfig``; ``page_window=1,
    render_chunk=1``: one page at a time, the official basic server's design."""

    def __init__(self, stages: Stages, retries: Optional[Retries] = None, max_pages: Optional[int] = None,
                 max_output_image_side: int = 2000, page_window: int = 8, render_chunk: int = RENDER_CHUNK,
                 max_pixels_in_flight: int = 128_000_000):
        self.stages, self.retries = stages, retries or Retries()
        self.max_pages, self.max_side, self.page_window = max_pages, max_output_image_side, page_window
        self.max_pixels_in_flight = max_pixels_in_flight
        self.render_chunk = render_chunk  # pages a render call asks for (pages of a chunk go on as rendered)
        self.text_layers: dict[str, bool] = {}  # text-layer mode → whether the recognizer needs the words

    @classmethod
    def for_app(cls, stages: Stages, config) -> "DocumentPipeline":
        """The pipeline of an application (``AppConfig``): the ingress's limits and retries."""
        ingress = config.ingress
        return cls(stages, ingress.retries(), ingress.max_pages, ingress.max_output_image_side, ingress.page_window,
                   max_pixels_in_flight=ingress.max_pixels_in_flight)

    async def open(self, data: bytes, kind: str, options: ParseOptions) -> OpenedDocument:
        """Store the document for every render call and select its pages; the document's own
        problems (``InputError``, ``TooManyPages``: 422) raise here, before any page runs."""
        ref = self.stages.store(data)
        info = await self.retries.run(lambda: _called(self.stages.inspect(ref, kind)), _call_kind)
        if isinstance(info, BaseException):
            if _call_kind(info) in UNAVAILABLE:
                raise StageUnavailable(f"the renderer is unavailable ({type(info).__name__}); retry the document")
            raise info  # the document's own problem (InputError), or a bug
        return OpenedDocument(ref, kind, info, select_pages(info, options, self.max_pages))

    async def parse(self, data: bytes, kind: str, options: ParseOptions, log_id: str,
                    on_page: Optional[OnPage] = None) -> ParsedDocument:
        return await self.run(await self.open(data, kind, options), options, log_id, on_page)

    async def run(self, doc: OpenedDocument, options: ParseOptions, log_id: str, on_page: Optional[OnPage] = None,
                  skip: frozenset[int] = frozenset()) -> ParsedDocument:
        """Every selected page but those in ``skip`` (a resumed job's), in order; ``on_page`` is
        awaited with each page as it finishes (any order; pages lost with a replica excluded).
        Raises ``ServiceError`` 504 past the deadline, 503 when pages were lost."""
        deadline_s = options.deadline_s
        deadline = time.monotonic() + deadline_s if deadline_s else None
        finished: list[PageOutput] = []

        async def collected(out: PageOutput) -> None:
            finished.append(out)
            if on_page is not None and _page_kind(out) not in UNAVAILABLE:
                await on_page(out)

        work = self._pages(doc, options, log_id, deadline, collected, skip)
        try:
            pages = await (asyncio.wait_for(work, deadline_s) if deadline_s else work)
        except asyncio.TimeoutError:
            metrics.count("errors", kind="deadline_exceeded")
            raise deadline_error(deadline_s, len(finished), len(doc.page_indices)) from None
        lost = [p.result.page_index for p in pages if _page_kind(p) in UNAVAILABLE]
        if lost:
            raise lost_pages_error(lost, len(pages), self.retries.count)
        return ParsedDocument(doc.info, doc.page_indices, pages)

    async def _pages(self, doc: OpenedDocument, options: ParseOptions, log_id: str, deadline, on_page,
                     skip: frozenset[int]) -> list[PageOutput]:
        todo = [i for i in doc.page_indices if i not in skip]
        text_layer = await self._needs_text_layer(options.text_layer)
        window = PageWindow(self.page_window, self.max_pixels_in_flight)
        chunks = [todo[i : i + self.render_chunk] for i in range(0, len(todo), self.render_chunk)]
        results = await asyncio.gather(*(self._chunk(doc, log_id, c, options, text_layer, window, deadline, on_page)
                                         for c in chunks))
        pages = [page for chunk in results for page in chunk]
        log.info("[%s] parsed %d pages (%d failed)", log_id, len(pages), sum(not p.result.ok for p in pages))
        return pages

    async def _needs_text_layer(self, mode: str) -> bool:
        """Whether the pages must carry their PDF's words (asked of the recognizer once per mode;
        while it cannot answer, they do)."""
        if mode not in self.text_layers:
            answer = await _called(self.stages.needs_text_layer(mode))
            if isinstance(answer, BaseException):
                return True
            self.text_layers[mode] = bool(answer)
        return self.text_layers[mode]

    async def _chunk(self, doc: OpenedDocument, log_id, indices, options, text_layer, window, deadline,
                     on_page) -> list[PageOutput]:
        """Each page goes on as soon as it is rendered; pages a lost renderer did not send are asked
        for again (the retries), and are lost with it if it stays lost."""
        async with window.hold(sum(w * h for w, h in (doc.info.page_sizes[i] for i in indices))):
            pages: list[asyncio.Future] = []

            async def render() -> None:
                async for page, ref in self.stages.render(doc.ref, log_id, doc.kind, indices[len(pages):],
                                                          doc.info.page_count, options.orient, text_layer):
                    pages.append(asyncio.ensure_future(self._page(page, ref, options, deadline, on_page)))

            try:
                start = time.perf_counter()
                failure = await self.retries.run(lambda: _called(render()), _call_kind, deadline)
                metrics.observe("stage_seconds", time.perf_counter() - start, stage="render")
                if isinstance(failure, BaseException):  # the renderer stayed unavailable: the pages left are lost
                    for i in indices[len(pages):]:
                        page = PageImage.failed(log_id, i, doc.info.page_count, page_error(failure, Stage.RENDER, i))
                        pages.append(asyncio.ensure_future(self._page(page, None, options, deadline, on_page)))
                return list(await asyncio.gather(*pages))
            except BaseException:  # cancelled (the deadline, the client went away): so are the pages under way
                for task in pages:
                    task.cancel()
                raise

    async def _page(self, page: PageImage, ref: Any, options: ParseOptions, deadline: Optional[float],
                    on_page: OnPage) -> PageOutput:
        """One page, which the stages find by ``ref`` (its object reference, or the page itself)."""
        boxes = layout_input(page, options)
        if boxes is None and page.error is None:
            start = time.perf_counter()
            boxes = await self.retries.run(lambda: _called(self.stages.detect(ref, options.layout)), _call_kind,
                                           deadline)
            if isinstance(boxes, BaseException):  # this page is lost at layout, the others go on
                boxes, page = [], replace(page, error=page_error(boxes, Stage.LAYOUT, page.page_index))
            elif not isinstance(boxes, list):  # the layout model failed on this page (a PageError)
                boxes, page = [], replace(page, error=boxes)
            metrics.observe("stage_seconds", time.perf_counter() - start, stage="layout")
        start = time.perf_counter()
        result = await recognize_with_retries(lambda _, boxes, request: self.stages.recognize(ref, boxes, request),
                                              page, boxes or [], options, self.retries, deadline)
        metrics.observe("stage_seconds", time.perf_counter() - start, stage="recognize")
        _count(result)
        out = encode_page(page, result, options, self.max_side)
        await on_page(out)
        return out


def document_status(pages: Sequence[PageResult | PageText], max_page_error_rate: float) -> str:
    """``ok`` (every page), ``partial`` (some failed, within ``max_page_error_rate``) or ``failed``."""
    failed = sum(not p.ok for p in pages)
    if failed == 0 and pages:
        return "ok"
    return "partial" if pages and failed / len(pages) <= max_page_error_rate else "failed"


def data_info(doc: OpenedDocument | ParsedDocument) -> dict[str, Any]:
    """PaddleX ``dataInfo``: image → {width, height, type}; PDF → {numPages, pages, type}."""
    if doc.info.kind == "image":
        width, height = doc.info.page_sizes[0]
        return {"width": width, "height": height, "type": "image"}
    pages = [{"width": doc.info.page_sizes[i][0], "height": doc.info.page_sizes[i][1]} for i in doc.page_indices]
    return {"numPages": len(pages), "pages": pages, "type": "pdf"}


def _count(result: PageResult) -> None:
    metrics.count("pages", status=result.status.value)
    if result.error is not None:
        metrics.count("errors", kind=str(result.error.kind))
    metrics.count("blocks", len(result.blocks))
    tokens = sum(b.num_tokens for b in result.blocks)
    if tokens:
        metrics.count("tokens", tokens)


def _page_kind(out: PageOutput):
    return out.result.error.kind if out.result.error else None


async def _called(call: Awaitable[Any]) -> Any:
    """A stage call's result, or the exception it raised (as a value, for :class:`Retries`)."""
    try:
        return await call
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # noqa: BLE001 - judged by the caller (retried, or this page fails)
        return exc


def _call_kind(result: Any):
    """The error kind a stage call's exception stands for (None: it returned)."""
    from deployments.renderer import InputError

    if not isinstance(result, BaseException) or isinstance(result, InputError):
        return None
    return classify(result)
