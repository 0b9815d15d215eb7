"""The bulk pipeline's Ray Data steps. Rows are pages; a UDF never raises for one bad page or
document (that would fail the dataset): errors travel as data and the driver reassembles documents.

render_document (CPU tasks) → LayoutWorker (actor pool) → RecognizeWorker (actor pool, in-process
engine) → page rows. With a running Serve application, ServeWorker replaces all three.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from typing import Any, Iterator, Optional

import numpy as np

from serve_app.bulk.io import read_source

log = logging.getLogger("serve_app.bulk")
DOCUMENT, SKIPPED = -1, -2  # page_index of a row that stands for a whole document
TRANSIENT = ("recognition_failed", "deadline_exceeded", "internal_error", "overloaded", "replica_lost")
RESULT_COLUMNS = ("source", "doc_id", "page_index", "page_count", "started", "status", "error_kind", "error",
                  "markdown", "pruned_result")
_renderers: dict[str, Any] = {}


def _base(row: dict) -> dict:
    return {"source": str(row["source"]), "doc_id": "", "page_index": DOCUMENT, "page_count": 0,
            "started": time.time(), "image": b"", "height": 0, "width": 0, "scale": 1.0,
            "error_stage": "", "error_kind": "", "error": "", "boxes": ""}


def _read(row: dict, base: dict) -> Optional[bytes]:
    """The document's bytes, or None when it is unreadable or already done (``base`` says which)."""
    try:
        data = read_source(base["source"])
    except Exception as exc:  # noqa: BLE001 - a missing or unreadable source fails that document
        base.update(error_stage="read", error_kind="unreadable_source",
                    error=f"could not read {base['source']}: {exc}; check the path and its credentials")
        return None
    base["doc_id"] = hashlib.sha256(data).hexdigest()
    if row.get("done_hash") == base["doc_id"]:
        base["page_index"] = SKIPPED
        return None
    return data


def render_document(row: dict, renderer: dict) -> Iterator[dict]:
    """flat_map: one document → one row per page (RGB bytes), or one row for the whole document."""
    from deployments.renderer import InputError, Renderer, RendererConfig

    base = _base(row)
    data = _read(row, base)
    if data is None:
        yield base
        return
    key = json.dumps(renderer, sort_keys=True)
    if key not in _renderers:
        _renderers[key] = Renderer(RendererConfig(**renderer))
    emitted, count = 0, 0
    try:
        for page in _renderers[key].render(data, doc_id=base["doc_id"][:16]):
            count = page.page_count
            image = np.ascontiguousarray(page.image)
            yield {**base, "page_index": page.page_index, "page_count": count, "image": image.tobytes(),
                   "height": image.shape[0], "width": image.shape[1], "scale": page.scale,
                   **_error_fields(page.error)}
            emitted += 1
    except InputError as exc:
        base.update(error_stage="render", error_kind=exc.kind, error=str(exc))
        yield base
        return
    except Exception as exc:  # noqa: BLE001 - the rest of this document fails, nothing else
        if not emitted:
            base.update(error_stage="render", error_kind="render_failed", error=f"{type(exc).__name__}: {exc}")
            yield base
            return
        for index in range(emitted, count):  # pages already sent stay; the others fail as pages
            yield {**base, "page_index": index, "page_count": count, "error_stage": "render",
                   "error_kind": "render_failed", "error": f"{type(exc).__name__}: {exc}"}


def _error_fields(error) -> dict:
    if error is None:
        return {}
    return {"error_stage": error.stage, "error_kind": error.kind, "error": error.message}


def _rows(batch: dict[str, np.ndarray]) -> list[dict]:
    columns = {key: value.tolist() for key, value in batch.items()}
    return [dict(zip(columns, values)) for values in zip(*columns.values())]


def _columns(rows: list[dict], names) -> dict[str, list]:
    return {name: [row.get(name) for row in rows] for name in names}


def _page(row: dict):
    from deployments.datamodel import PageError, PageImage

    if row["image"]:
        image = np.frombuffer(row["image"], np.uint8).reshape(row["height"], row["width"], 3)
    else:
        image = np.zeros((0, 0, 3), np.uint8)
    error = PageError(row["error_stage"], row["error_kind"], row["error"]) if row["error_kind"] else None
    return PageImage(row["doc_id"][:16], row["page_index"], row["page_count"], image, row["scale"], error)


class LayoutWorker:
    """map_batches actor: adds the layout boxes (JSON) of every page."""

    def __init__(self, layout: dict):
        from deployments.layout.config import LayoutConfig
        from deployments.layout.detector import LayoutDetector

        self.detector = LayoutDetector(LayoutConfig(**layout))

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list]:
        rows = _rows(batch)
        todo = [row for row in rows if row["page_index"] >= 0 and not row["error_kind"]]
        try:
            found = self.detector.detect([_page(row) for row in todo])
        except Exception:  # noqa: BLE001 - find the page that breaks it; the others go on
            found = [self._one(row) for row in todo]
        for row, boxes in zip(todo, found):
            if boxes is not None:
                row["boxes"] = json.dumps([box.to_json() for box in boxes])
        return _columns(rows, rows[0].keys())

    def _one(self, row: dict):
        try:
            return self.detector.detect([_page(row)])[0]
        except Exception as exc:  # noqa: BLE001 - this page fails at layout detection
            log.exception("layout failed on %s page %s", row["source"], row["page_index"])
            row.update(error_stage="layout", error_kind="layout_failed", error=f"{type(exc).__name__}: {exc}")
            return None


class RecognizeWorker:
    """map_batches actor holding the recognition engine: reads a batch of pages concurrently, retries
    transient page failures on a schedule, and returns page results (Markdown, prunedResult)."""

    def __init__(self, recognizer: dict, retries: int, backoff: list[float]):
        from deployments.recognizer.config import RecognizerConfig
        from deployments.recognizer.recognizer import PageRequest, Recognizer
        from serve_app.settings import model_settings

        self.retries, self.backoff = retries, backoff or [0.0]
        self.request = PageRequest(model_settings=model_settings())
        self.loop = asyncio.new_event_loop()
        self.recognizer = Recognizer(RecognizerConfig(**recognizer))
        self.loop.run_until_complete(self.recognizer.start())

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list]:
        rows = _rows(batch)
        return _columns(self.loop.run_until_complete(self._read_all(rows)), RESULT_COLUMNS)

    async def _read_all(self, rows: list[dict]) -> list[dict]:
        return await asyncio.gather(*(self._read(row) for row in rows))

    async def _read(self, row: dict) -> dict:
        from serve_app.assemble import page_markdown, pruned_result

        out = {k: row[k] for k in ("source", "doc_id", "page_index", "page_count", "started")}
        if row["page_index"] < 0:
            return {**out, "status": "failed", "error_kind": row["error_kind"], "error": row["error"],
                    "markdown": "", "pruned_result": ""}
        page, boxes = _page(row), _boxes(row["boxes"])
        for attempt in range(self.retries + 1):
            try:
                result = await self.recognizer.recognize(page, boxes, self.request)
            except Exception as exc:  # noqa: BLE001 - an unexpected error fails this page, retried
                result = self.recognizer.failed_page(page, self.request, "internal_error",
                                                     f"{type(exc).__name__}: {exc}")
            if result.ok or result.error.kind not in TRANSIENT or attempt == self.retries:
                break
            await asyncio.sleep(self.backoff[min(attempt, len(self.backoff) - 1)])
        error = result.error
        return {**out, "status": result.status.value, "error_kind": error.kind if error else "",
                "error": f"{error.kind}: {error.message}" if error else "",
                "markdown": page_markdown(result) if result.ok else "",
                "pruned_result": json.dumps(pruned_result(result), ensure_ascii=False)}


def _boxes(text: str):
    from deployments.datamodel import LayoutBox

    return [LayoutBox(b["cls_id"], b["label"], b["score"], tuple(b["coordinate"]), b["order"])
            for b in json.loads(text or "[]")]


class ServeWorker:
    """map_batches actor for ``--serve-url``: one document → its page results from a running Serve
    application (which does rendering, layout and recognition)."""

    def __init__(self, serve_url: str):
        from serve_app.client import Client

        self.client = Client(serve_url)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list]:
        rows: list[dict] = []
        for row in _rows(batch):
            rows.extend(self._document(row))
        return _columns(rows, RESULT_COLUMNS)

    def _document(self, row: dict) -> list[dict]:
        base = _base(row)
        data = _read(row, base)
        doc = {**{k: base[k] for k in RESULT_COLUMNS if k in base}, "status": "failed", "markdown": "",
               "pruned_result": ""}
        if data is None:
            return [doc]
        try:
            pages = self.client.parse_bytes(data, base["source"])["layoutParsingResults"]
        except Exception as exc:  # noqa: BLE001 - the server refused or failed this document
            kind = f"http_{exc.status}" if hasattr(exc, "status") else type(exc).__name__
            return [{**doc, "error_kind": kind, "error": str(exc)[:2000]}]
        return [{**doc, "page_index": i, "page_count": len(pages), "status": p.get("status", "ok"),
                 "error_kind": (p.get("error") or {}).get("kind", ""),
                 "error": f"{p['error']['kind']}: {p['error']['message']}" if p.get("error") else "",
                 "markdown": p["markdown"]["text"], "pruned_result": json.dumps(p["prunedResult"], ensure_ascii=False)}
                for i, p in enumerate(pages)]
