"""Pages back into documents, on the driver: page rows arrive in any order from the pipeline; a
document is complete when all its pages (or its one document-level row) have arrived."""

from __future__ import annotations

import time
from collections import Counter
from datetime import datetime, timezone
from typing import Optional

from serve_app.bulk.stages import DOCUMENT, SKIPPED


class Assembler:
    """Holds only the text of documents in flight (never images)."""

    def __init__(self, fingerprint: str, max_page_error_rate: float):
        self.fingerprint, self.max_page_error_rate = fingerprint, max_page_error_rate
        self.open: dict[str, dict] = {}

    def add(self, page: dict) -> Optional[dict]:
        """Take one page row; return the document's output row once it is complete."""
        source = page["source"]
        if page["page_index"] in (DOCUMENT, SKIPPED):
            self.open.pop(source, None)
            return self._row(page, {}, skipped=page["page_index"] == SKIPPED)
        state = self.open.setdefault(source, {"first": page, "pages": {}})
        state["pages"][page["page_index"]] = page
        if len(state["pages"]) < page["page_count"]:
            return None
        del self.open[source]
        return self._row(state["first"], state["pages"])

    def _row(self, first: dict, pages: dict[int, dict], skipped: bool = False) -> dict:
        ordered = [pages[i] for i in sorted(pages)]
        row = {"doc_id": first["doc_id"], "source": first["source"], "fingerprint": self.fingerprint,
               "status": "skipped" if skipped else "failed", "error_kind": first["error_kind"] or None,
               "error": first["error"] or None, "page_count": len(ordered),
               "pages_ok": sum(p["status"] == "ok" for p in ordered),
               "markdown": [p["markdown"] for p in ordered], "pruned_result": [p["pruned_result"] for p in ordered],
               "page_status": [p["status"] for p in ordered], "page_errors": [p["error"] for p in ordered],
               "seconds": round(max(time.time() - first["started"], 0.0), 3),
               "finished_at": datetime.now(timezone.utc).isoformat()}
        if skipped or not ordered:
            return row
        row["error_kind"] = row["error"] = None
        failed = len(ordered) - row["pages_ok"]
        if failed / len(ordered) > self.max_page_error_rate:
            row["error_kind"] = "too_many_failed_pages"
            row["error"] = f"{failed} of {len(ordered)} pages failed (more than max_page_error_rate)"
        else:
            row["status"] = "ok" if failed == 0 else "partial"
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
            for error in row["page_errors"] or []:
                if error:
                    self.failures[error.split(":", 1)[0]] += 1
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
