"""The document worker of bulk jobs: one document in, one output row out (never an exception).
Holds the stage classes (or a client of a running Serve application) for its lifetime."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from datetime import datetime, timezone
from typing import Any, Optional

log = logging.getLogger("serve_app.bulk")
COLUMNS = ("doc_id", "source", "fingerprint", "status", "error_kind", "error", "page_count", "pages_ok",
           "markdown", "pruned_result", "page_status", "page_errors", "seconds", "finished_at")
TRANSIENT = ("recognition_failed", "deadline_exceeded", "internal_error", "overloaded", "replica_lost")


def filesystem(uri: str):
    """(pyarrow filesystem, path) for a URI (s3://, gs://, ...) or a local path (made absolute)."""
    import pyarrow.fs as pafs

    if "://" in uri:
        return pafs.FileSystem.from_uri(uri)
    from pathlib import Path

    return pafs.LocalFileSystem(), str(Path(uri).resolve())


def read_source(source: str) -> bytes:
    if source.startswith(("http://", "https://")):
        import httpx

        response = httpx.get(source, timeout=60, follow_redirects=True)
        response.raise_for_status()
        return response.content
    fs, path = filesystem(source)
    with fs.open_input_stream(path) as stream:
        return stream.read()


class DocumentWorker:
    """Callable for ``Dataset.map_batches``: {"source": [...]} → output columns."""

    def __init__(self, app: dict, serve_url: Optional[str], fingerprint: str, retries: int, backoff: list[float],
                 max_page_error_rate: float):
        from serve_app.config import load_config

        self.fingerprint, self.retries, self.backoff = fingerprint, retries, backoff
        self.max_page_error_rate = max_page_error_rate
        self.loop = asyncio.new_event_loop()
        if serve_url:
            from serve_app.client import Client

            self.client, self.stages = Client(serve_url), None
            return
        from deployments.layout.detector import LayoutDetector
        from deployments.recognizer.recognizer import Recognizer
        from deployments.renderer import Renderer

        config = load_config(app)
        self.client = None
        self.stages = (Renderer(config.renderer), LayoutDetector(config.layout), Recognizer(config.recognizer))
        self.loop.run_until_complete(self.stages[2].start())

    def __call__(self, batch: dict[str, Any]) -> dict[str, list]:
        rows = [self.process(str(source)) for source in batch["source"]]
        return {column: [row[column] for row in rows] for column in COLUMNS}

    def process(self, source: str) -> dict[str, Any]:
        start = time.perf_counter()
        row: dict[str, Any] = {"doc_id": "", "source": source, "fingerprint": self.fingerprint, "status": "failed",
                               "error_kind": None, "error": None, "page_count": 0, "pages_ok": 0, "markdown": [],
                               "pruned_result": [], "page_status": [], "page_errors": []}
        try:
            data = read_source(source)
            row["doc_id"] = hashlib.sha256(data).hexdigest()
            pages = self._remote(data, source) if self.client else self._local(data)
            self._fill(row, pages)
        except Exception as exc:  # noqa: BLE001 - one bad document fails that document only
            row["error_kind"] = getattr(exc, "kind", type(exc).__name__)
            row["error"] = str(exc)[:2000]
        row["seconds"] = round(time.perf_counter() - start, 3)
        row["finished_at"] = datetime.now(timezone.utc).isoformat()
        return row

    def _fill(self, row: dict, pages: list[tuple[str, str, str, str]]) -> None:
        row["page_count"] = len(pages)
        for markdown, pruned, status, error in pages:
            row["markdown"].append(markdown)
            row["pruned_result"].append(pruned)
            row["page_status"].append(status)
            row["page_errors"].append(error)
        row["pages_ok"] = sum(s == "ok" for s in row["page_status"])
        failed = len(pages) - row["pages_ok"]
        if not pages or failed / len(pages) > self.max_page_error_rate:
            row["status"], row["error_kind"] = "failed", row["error_kind"] or "too_many_failed_pages"
            row["error"] = row["error"] or f"{failed} of {len(pages)} pages failed (max_page_error_rate)"
        else:
            row["status"] = "ok" if failed == 0 else "partial"

    def _local(self, data: bytes) -> list[tuple[str, str, str, str]]:
        from serve_app.assemble import page_markdown, pruned_result
        from serve_app.settings import model_settings

        renderer, detector, recognizer = self.stages
        out = []
        for page in renderer.render(data):
            result = self._with_retries(page, detector, recognizer, model_settings())
            error = f"{result.error.kind}: {result.error.message}" if result.error else ""
            out.append((page_markdown(result) if result.ok else "", json.dumps(pruned_result(result), ensure_ascii=False),
                        result.status.value, error))
        return out

    def _with_retries(self, page, detector, recognizer, settings):
        from deployments.recognizer.recognizer import PageRequest

        for attempt in range(self.retries + 1):
            if page.error is not None:
                from deployments.datamodel import PageResult, PageStatus

                return PageResult(page.page_index, page.width, page.height, PageStatus.FAILED, page.error, page.page_count)
            boxes = detector.detect([page])[0]
            result = self.loop.run_until_complete(recognizer.recognize(page, boxes, PageRequest(model_settings=settings)))
            if result.ok or result.error.kind not in TRANSIENT or attempt == self.retries:
                return result
            time.sleep(self.backoff[min(attempt, len(self.backoff) - 1)] if self.backoff else 0)
        return result

    def _remote(self, data: bytes, source: str) -> list[tuple[str, str, str, str]]:
        result = self.client.parse_bytes(data, source)
        return [(p["markdown"]["text"], json.dumps(p["prunedResult"], ensure_ascii=False), p.get("status", "ok"),
                 f"{p['error']['kind']}: {p['error']['message']}" if p.get("error") else "")
                for p in result["layoutParsingResults"]]
