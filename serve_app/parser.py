"""DocumentParser: one document through render → layout → recognize → encode (the steps of
``pagepath.py``), with a bounded window of pages in flight. Runs in the ingress replica and talks
to the stages by handle."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, replace
from typing import Any, AsyncIterator, Awaitable, Callable, Optional

from deployments.datamodel import PageImage, PageResult
from deployments.renderer import DocumentInfo, InputError, parse_page_ranges
from serve_app import metrics
from serve_app.config import AppConfig
from serve_app.options import ParseOptions
from serve_app.pagepath import UNAVAILABLE, Retries, error_kind, layout_input, recognize_with_retries, stage_error
from serve_app.respond import PageOutput, encode_page

log = logging.getLogger("serve_app")
RENDER_CHUNK = 4  # pages per render call: fewer hops, still streaming


class TooManyPages(ValueError):
    """The document exceeds ``ingress.max_pages`` (422, never a silent truncation)."""


class StageUnavailable(RuntimeError):
    """A stage stayed unavailable (its replicas lost or full) through the retries (503)."""


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


class ObjectStore:
    """Ray's object store between the ingress and the stages. The document is stored once for
    every render call; each page is stored once, by the renderer, as it is rendered, and goes on
    to layout and recognition by the reference its render call returned (owned by this process),
    read in place there: the ingress never copies a page's pixels."""

    @staticmethod
    def put(data: bytes):
        import ray

        return ray.put(data)

    @staticmethod
    async def pages(renderer, *args) -> AsyncIterator[tuple[PageImage, Any]]:
        """``renderer.render(*args)``'s pages as they are rendered, each with its reference."""
        refs = await renderer.options(stream=True).render.remote(*args)._to_object_ref_gen()
        async for ref in refs:
            yield await ref, ref


class DocumentParser:
    """Talks to the stages through handles (anything with ``.method.remote(...)`` awaitables) and
    hands them the document and its pages through ``store`` (:class:`ObjectStore` by default)."""

    def __init__(self, renderer, layout, recognizer, config: AppConfig, store=ObjectStore):
        self.renderer, self.layout, self.recognizer, self.config = renderer, layout, recognizer, config
        self.store = store
        self.text_layers: dict[str, bool] = {}  # text-layer mode → whether the recognizer needs the words
        # Only a lost or full replica is worth another try here; a page's own failure is returned.
        self.retries = Retries(config.ingress.page_retries, config.ingress.retry_backoff_s, UNAVAILABLE)

    async def open(self, data: bytes, kind: str, options: ParseOptions) -> OpenedDocument:
        """Store the document once for every render call and select its pages; the caller's input
        errors (:class:`InputError`, :class:`TooManyPages`) are raised here, before any page runs."""
        ref = self.store.put(data)
        info = await self.retries.run(lambda: _called(self.renderer.inspect.remote(ref, kind)), _failed_kind)
        if _failed_kind(info) in UNAVAILABLE:
            raise StageUnavailable(f"the renderer is unavailable ({type(info).__name__}); retry the document")
        if isinstance(info, BaseException):  # the document's own problem (InputError), or a bug
            raise info
        indices = parse_page_ranges(options.page_ranges, info.page_count)
        limit = self.config.ingress.max_pages
        if limit is not None and len(indices) > limit:
            raise TooManyPages(f"the document has {len(indices)} pages to parse but this server accepts at most {limit} "
                               "(ingress.max_pages); split it or send pageRanges")
        return OpenedDocument(ref, kind, info, indices)

    async def parse(self, data: bytes, kind: str, options: ParseOptions, log_id: str,
                    deadline: Optional[float] = None, on_page: Optional[OnPage] = None) -> ParsedDocument:
        """Every selected page, in order, failed pages included. ``deadline`` (``time.monotonic``)
        bounds each page's recognition, so the engine stops work nobody waits for."""
        return await self.run(await self.open(data, kind, options), options, log_id, deadline, on_page)

    async def run(self, doc: OpenedDocument, options: ParseOptions, log_id: str, deadline: Optional[float] = None,
                  on_page: Optional[OnPage] = None, skip: frozenset[int] = frozenset()) -> ParsedDocument:
        """The pages of an opened document but those in ``skip`` (a resumed job's finished pages);
        ``on_page`` is awaited with each page as it finishes, in whatever order they finish."""
        todo = [i for i in doc.page_indices if i not in skip]
        text_layer = await self._needs_text_layer(options.text_layer)
        window = asyncio.Semaphore(self.config.ingress.page_window)
        chunks = [todo[i : i + RENDER_CHUNK] for i in range(0, len(todo), RENDER_CHUNK)]
        results = await asyncio.gather(*(self._chunk(doc, log_id, c, options, text_layer, window, deadline,
                                                     on_page) for c in chunks))
        pages = [page for chunk in results for page in chunk]
        log.info("[%s] parsed %d pages (%d failed)", log_id, len(pages), sum(not p.result.ok for p in pages))
        return ParsedDocument(doc.info, doc.page_indices, pages)

    async def _needs_text_layer(self, mode: str) -> bool:
        """Whether the pages must carry their PDF's words (asked of the recognizer once per mode;
        while it cannot answer, they do)."""
        if mode not in self.text_layers:
            answer = await _called(self.recognizer.needs_text_layer.remote(mode))
            if isinstance(answer, BaseException):
                return True
            self.text_layers[mode] = bool(answer)
        return self.text_layers[mode]

    async def _chunk(self, doc: OpenedDocument, log_id, indices, options, text_layer, window, deadline,
                     on_page) -> list[PageOutput]:
        """Each page goes on as soon as it is rendered; pages a lost renderer did not send are
        asked for again (the retries), and fail if it stays lost."""
        async with window:
            pages: list[asyncio.Future] = []

            async def render() -> None:
                async for page, ref in self.store.pages(self.renderer, doc.ref, log_id, doc.kind,
                                                        indices[len(pages):], options.orient, text_layer):
                    pages.append(asyncio.ensure_future(self._page(page, ref, options, deadline, on_page)))

            try:
                start = time.perf_counter()
                failure = await self.retries.run(lambda: _called(render()), _failed_kind, deadline)
                metrics.observe("stage_seconds", time.perf_counter() - start, stage="render")
                if isinstance(failure, BaseException):  # the renderer stayed unavailable: the pages left fail
                    for i in indices[len(pages):]:
                        page = PageImage.failed(log_id, i, doc.info.page_count, stage_error(i, failure))
                        pages.append(asyncio.ensure_future(self._page(page, None, options, deadline, on_page)))
                return list(await asyncio.gather(*pages))
            except BaseException:  # cancelled (the deadline): so are the pages under way
                for task in pages:
                    task.cancel()
                raise

    async def _page(self, page: PageImage, ref: Any, options: ParseOptions, deadline: Optional[float],
                    on_page: Optional[OnPage] = None) -> PageOutput:
        """One page, which the stages read by ``ref`` (its reference in the object store)."""
        boxes = layout_input(page, options)
        if boxes is None and page.error is None:
            start = time.perf_counter()
            boxes = await self.retries.run(lambda: _called(self.layout.detect.remote(ref, options.layout)),
                                           _failed_kind, deadline)
            if isinstance(boxes, BaseException):  # this page fails at layout, the others go on
                boxes, page = [], replace(page, error=stage_error(page.page_index, boxes))
            metrics.observe("stage_seconds", time.perf_counter() - start, stage="layout")
        start = time.perf_counter()
        result = await recognize_with_retries(lambda _, boxes, request: self.recognizer.recognize.remote(
            ref, boxes, request), page, boxes or [], options, self.retries, deadline)
        metrics.observe("stage_seconds", time.perf_counter() - start, stage="recognize")
        self._count(result)
        out = encode_page(page, result, options, self.config.ingress.max_output_image_side)
        if on_page is not None:
            await on_page(out)
        return out

    @staticmethod
    def _count(result: PageResult) -> None:
        metrics.count("pages", status=result.status.value)
        if result.error is not None:
            metrics.count("errors", kind=result.error.kind)
        metrics.count("blocks", len(result.blocks))
        tokens = sum(b.num_tokens for b in result.blocks)
        if tokens:
            metrics.count("tokens", tokens)


async def _called(call: Awaitable[Any]) -> Any:
    """A stage call's result, or the exception it raised (as a value, for :class:`Retries`)."""
    try:
        return await call
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # noqa: BLE001 - judged by the caller (retried, or this page fails)
        return exc


def _failed_kind(result: Any) -> Optional[str]:
    """The page error kind a stage call's exception stands for (None: it returned)."""
    if not isinstance(result, BaseException) or isinstance(result, InputError):
        return None
    return error_kind(result)


def data_info(doc: OpenedDocument | ParsedDocument) -> dict[str, Any]:
    """PaddleX ``dataInfo``: image → {width, height, type}; PDF → {numPages, pages, type}."""
    if doc.info.kind == "image":
        width, height = doc.info.page_sizes[0]
        return {"width": width, "height": height, "type": "image"}
    pages = [{"width": doc.info.page_sizes[i][0], "height": doc.info.page_sizes[i][1]} for i in doc.page_indices]
    return {"numPages": len(pages), "pages": pages, "type": "pdf"}


