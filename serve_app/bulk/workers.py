"""The bulk pipeline's Ray Data steps: the stages in Ray Data's tasks and actors, a batch at a time,
with each stage's own failure rule (``Renderer.render_pages``, ``LayoutDetector.detect_pages``,
``Recognizer.recognize``) and the pipeline's page steps (``serve_app.pipeline``: page selection,
recognition with retries and the document's deadline). Items are typed (``items.py``); a step never
raises for one bad page or document (that would fail the dataset).

RenderWorker (CPU tasks) → LayoutWorker (actor pool) → RecognizeWorker (actor pool, in-process
engine) → items. With a running Serve application, ServeWorker replaces all three.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from typing import Any, Iterator, Optional

import numpy as np

from deployments.datamodel import ErrorKind, PageError, Stage
from serve_app.assemble import PageText
from serve_app.bulk.io import read_source
from serve_app.bulk.items import DocumentDone, DocumentTask, Item, PageTask, decode, encode, to_row
from serve_app.errors import ServiceError, document_error
from serve_app.options import ParseOptions
from serve_app.pipeline import Retries, layout_input, recognize_with_retries, select_pages

log = logging.getLogger("serve_app.bulk")


def _read(row: dict, doc: DocumentTask) -> tuple[Optional[bytes], Optional[DocumentDone]]:
    """The document's bytes, or the item that ends it here (unreadable, or already done)."""
    try:
        data = read_source(doc.source)
    except Exception as exc:  # noqa: BLE001 - a missing or unreadable source fails that document
        return None, DocumentDone(doc, PageError(Stage.READ, ErrorKind.UNREADABLE_SOURCE, f"could not read "
                                                 f"{doc.source}: {exc}; check the path and its credentials"))
    doc.doc_id = hashlib.sha256(data).hexdigest()
    if row.get("done_hash") == doc.doc_id:
        return None, DocumentDone(doc, skipped=True)
    return data, None


_render_workers: dict[str, "RenderWorker"] = {}


def render_document(row: dict, renderer: dict, options: ParseOptions, text_layer: bool = True) -> Iterator[dict]:
    """flat_map task: one document → one row per selected page, or one row for the document; with
    ``text_layer`` a PDF page carries its own words (``pages_need_text_layer``)."""
    key = json.dumps([renderer, options.model_dump(mode="json"), text_layer], sort_keys=True)
    if key not in _render_workers:  # one per task process and configuration
        _render_workers[key] = RenderWorker(renderer, options, text_layer)
    for item in _render_workers[key].pages(row):
        yield to_row(item)


class RenderWorker:
    """The rendering step of a bulk job (the ``renderer`` stage)."""

    def __init__(self, renderer: dict, options: ParseOptions, text_layer: bool = True):
        from deployments.renderer import Renderer, RendererConfig

        self.renderer, self.options = Renderer(RendererConfig(**renderer)), options
        self.text_layer = text_layer

    def pages(self, row: dict) -> Iterator[Item]:
        doc = DocumentTask(str(row["source"]), started=time.time())
        data, done = _read(row, doc)
        if done is not None:
            yield done
            return
        try:
            info = self.renderer.inspect(data)
            indices = select_pages(info, self.options)
        except Exception as exc:  # noqa: BLE001 - this document fails, nothing else
            yield DocumentDone(doc, document_error(exc))
            return
        doc.pages = len(indices)
        for page in self.renderer.render_pages(data, doc.doc_id[:16], info.kind, indices, info.page_count,
                                               self.options.orient, self.text_layer):
            yield PageTask(doc, page)


class LayoutWorker:
    """map_batches actor: the layout boxes of every page (one batch through the detector)."""

    def __init__(self, layout: dict, options: ParseOptions):
        from deployments.layout.config import LayoutConfig
        from deployments.layout.detector import LayoutDetector

        self.detector, self.options = LayoutDetector(LayoutConfig(**layout)), options

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list]:
        items = decode(batch)
        todo = []
        for item in items:
            if isinstance(item, PageTask):
                item.boxes = layout_input(item.page, self.options)
                if item.boxes is None and item.page.error is None:
                    todo.append(item)
        found = self.detector.detect_pages([t.page for t in todo], [self.options.layout] * len(todo))
        for task, boxes in zip(todo, found):
            if isinstance(boxes, PageError):  # the layout model failed on this page
                task.page.error, boxes = boxes, []
            task.boxes = boxes
        return encode(items)


class RecognizeWorker:
    """map_batches actor holding the recognition engine: reads a batch of pages concurrently and
    retries transient page failures on a schedule. Its ``__call__`` is a coroutine, so Ray Data runs
    it on the actor's event loop and several batches (``recognize_batches_in_flight``) share the
    engine at once: the engine never drains between one batch and the next."""

    def __init__(self, recognizer: dict, options: ParseOptions, retries: Retries):
        from deployments.recognizer.config import RecognizerConfig
        from deployments.recognizer.recognizer import Recognizer

        self.options, self.retries = options, retries
        self.recognizer = Recognizer(RecognizerConfig(**recognizer))
        self.started: Optional[asyncio.Task] = None  # on the actor's loop, by the first batch

    async def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list]:
        if self.started is None:
            self.started = asyncio.ensure_future(self.recognizer.start())
        await asyncio.shield(self.started)
        items = decode(batch)
        await asyncio.gather(*(self._read(item) for item in items if isinstance(item, PageTask)))
        return encode(items)

    async def _read(self, task: PageTask) -> None:
        deadline = None  # the document's deadline, from when its rendering started (wall clock: another process)
        if self.options.deadline_s:
            deadline = time.monotonic() + task.doc.started + self.options.deadline_s - time.time()
        result = await recognize_with_retries(self.recognizer.recognize, task.page, task.boxes or [], self.options,
                                              self.retries, deadline)
        task.result, task.page = result.without_images(), _dropped(task.page)


def _dropped(page):
    """The page without its pixels: they are not needed past recognition."""
    page.image = np.zeros((0, 0, 3), np.uint8)
    return page


class ServeWorker:
    """map_batches actor for ``--serve-url``: one document → its pages, assembled by a running
    Serve application (which renders, detects and reads) with the job's options."""

    def __init__(self, serve_url: str, request: dict[str, Any]):
        from serve_app.client import Client

        self.client, self.request = Client(serve_url), request

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list]:
        return encode([self._document(row) for row in _rows(batch)])

    def _document(self, row: dict) -> DocumentDone:
        doc = DocumentTask(str(row["source"]), started=time.time())
        data, done = _read(row, doc)
        if done is not None:
            return done
        try:
            pages = self.client.parse_bytes(data, doc.source, **self.request)["layoutParsingResults"]
        except ServiceError as exc:  # the server refused or failed this document
            return DocumentDone(doc, PageError(Stage.SERVE, ErrorKind.SERVER_REFUSED, f"HTTP {exc.status}: "
                                               f"{exc.message[:2000]}"))
        except Exception as exc:  # noqa: BLE001 - the server could not be reached
            return DocumentDone(doc, PageError(Stage.SERVE, ErrorKind.UNREACHABLE, f"{type(exc).__name__}: {exc}"))
        doc.pages = len(pages)
        return DocumentDone(doc, texts=[_served_page(i, p) for i, p in enumerate(pages)])


def _served_page(index: int, entry: dict) -> PageText:
    error = entry.get("error")
    return PageText(index, entry.get("status", "ok") == "ok",
                    PageError.of(error["stage"], error["kind"], error["message"]) if error else None,
                    entry["markdown"]["text"], entry["prunedResult"])


def _rows(batch: dict[str, np.ndarray]) -> list[dict]:
    columns = {key: value.tolist() for key, value in batch.items()}
    return [dict(zip(columns, values)) for values in zip(*columns.values())]
