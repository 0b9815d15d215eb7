"""Pages back into documents, on the driver: page rows arrive in any order from the pipeline; a
document is complete when all its pages (or its one document-level row) have arrived."""

from __future__ import annotations

import json
import time
from collections import Counter
from datetime import datetime, timezone
from typing import Optional

from deployments.datamodel import ErrorKind, PageError, PageResult
from serve_app.assemble import PageText, assemble_document
from serve_app.bulk.items import DocumentDone, DocumentTask, Item
from serve_app.options import ParseOptions
from serve_app.pipeline import document_status


class Collector:
    """Holds the page results (text and boxes, never images) of documents in flight; a complete
    document goes through the same document step as a Serve response (``assemble_document``)."""

    def __init__(self, fingerprint: str, options: ParseOptions, max_page_error_rate: float):
        self.fingerprint, self.options, self.max_page_error_rate = fingerprint, options, max_page_error_rate
        self.open: dict[str, dict[int, PageResult]] = {}

    def add(self, item: Item) -> Optional[dict]:
        """Take one item; return the document's output row once it is complete."""
        if isinstance(item, DocumentDone):
            self.open.pop(item.doc.source, None)
            return self._row(item.doc, item.texts, item.error, item.skipped)
        pages = self.open.setdefault(item.doc.source, {})
        pages[item.page.page_index] = item.result
        if len(pages) < item.doc.pages:
            return None
        del self.open[item.doc.source]
        return self._row(item.doc, assemble_document([pages[i] for i in sorted(pages)], self.options))

    def _row(self, doc: DocumentTask, texts: list[PageText], error: Optional[PageError] = None,
             skipped: bool = False) -> dict:
        ok = sum(t.ok for t in texts)
        status = "failed" if error or not texts else document_status(texts, self.max_page_error_rate)
        row = {"doc_id": doc.doc_id, "source": doc.source, "fingerprint": self.fingerprint, "status": status,
               "error_kind": str(error.kind) if error else None, "error": error.message if error else None,
               "page_count": len(texts), "pages_ok": ok, "markdown": [t.markdown for t in texts],
               "pruned_result": [json.dumps(t.pruned, ensure_ascii=False) for t in texts],
               "page_status": ["ok" if t.ok else "failed" for t in texts],
               "page_errors": [f"{t.error.kind}: {t.error.message}" if t.error else "" for t in texts],
               "page_error_kinds": [str(t.error.kind) if t.error else "" for t in texts],
               "seconds": round(max(time.time() - doc.started, 0.0), 3),
               "finished_at": datetime.now(timezone.utc).isoformat()}
        if skipped:
            row["status"] = "skipped"
        elif status == "failed" and texts and error is None:
            row["error_kind"] = str(ErrorKind.TOO_MANY_FAILED_PAGES)
            row["error"] = f"{len(texts) - ok} of {len(texts)} pages failed (more than max_page_error_rate)"
        return row


class Progress:
    """Counts, a summary line every N seconds, and the final summary."""

    def __init__(self, total: int, skipped: int, every_s: float):
        self.total, self.skipped, self.every_s = total, skipped, every_s
        self.start = self.last = time.monotonic()
        self.docs: Counter = Counter()
        self.pages = 0
        self.failures: Counter = Counter()

    def add(self, row: dict) -> None:
        if row["status"] == "skipped":
            self.skipped += 1
        else:
            self.docs[row["status"]] += 1
            self.pages += row["page_count"] or 0
            if row["error_kind"]:
                self.failures[row["error_kind"]] += 1
            for kind in row["page_error_kinds"] or []:
                if kind:
                    self.failures[kind] += 1
        if time.monotonic() - self.last >= self.every_s:
            self.last = time.monotonic()
            print(self.line(), flush=True)

    @property
    def documents(self) -> int:
        return sum(self.docs.values())

    def failure_rate(self) -> float:
        return self.docs.get("failed", 0) / max(self.documents, 1)

    def line(self) -> str:
        elapsed = time.monotonic() - self.start
        return (f"[bulk] {self.documents + self.skipped}/{self.total} documents ({self.skipped} skipped as done), "
                f"{self.pages} pages, {self.pages / max(elapsed, 1e-9):.2f} pages/s, status {dict(self.docs)}, "
                f"failures {dict(self.failures)}")

    def summary(self) -> dict:
        elapsed = time.monotonic() - self.start
        return {"documents": self.documents, "skipped": self.skipped, "by_status": dict(self.docs),
                "pages": self.pages, "failures_by_kind": dict(self.failures), "seconds": round(elapsed, 2),
                "pages_per_s": round(self.pages / max(elapsed, 1e-9), 3)}
