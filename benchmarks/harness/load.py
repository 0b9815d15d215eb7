"""HTTP load on 127.0.0.1: a batch of documents through N clients (throughput and latency), and a
steady load of clients sending documents back to back, every answer classified (faults, soak)."""

from __future__ import annotations

import base64
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from devtools.documents import text_pdf


def request(data: bytes, **options) -> dict:
    return {"file": base64.b64encode(data).decode(), "fileType": 0, **options}


def percentiles(latencies: list[float]) -> dict:
    import numpy as np

    p50, p95, p99 = np.percentile(latencies, [50, 95, 99])
    return {"p50_s": round(float(p50), 3), "p95_s": round(float(p95), 3), "p99_s": round(float(p99), 3)}


def through_http(url: str, docs: list[bytes], clients: int, timeout_s: float = 1800, **options) -> dict:
    """Every document once through ``clients`` clients: pages/s (one page a document unless told),
    latency percentiles, errors (any answer but a whole 200)."""
    import httpx

    latencies: list[float] = []
    errors = 0
    with httpx.Client(base_url=url, timeout=timeout_s) as client:
        def one(data: bytes) -> None:
            nonlocal errors
            start = time.perf_counter()
            response = client.post("/layout-parsing", json=request(data, **options))
            latencies.append(time.perf_counter() - start)
            errors += response.status_code != 200 or response.json()["errorCode"] != 0

        start = time.perf_counter()
        with ThreadPoolExecutor(clients) as pool:
            list(pool.map(one, docs))
        wall = time.perf_counter() - start
    return {"clients": clients, "documents": len(docs), "wall_s": wall, "documents_per_s": len(docs) / wall,
            **percentiles(latencies), "errors": errors}


class Load:
    """``clients`` threads, each sending documents (1-4 pages) back to back until told to stop or
    ``limit`` requests were sent; every answer is classified: ``ok`` (every page), a clear error
    (``http_503_retry_after``, …), ``hung`` (no answer within ``client_timeout_s``) or lost."""

    def __init__(self, url: str, clients: int, deadline_s: float, client_timeout_s: float, limit: int):
        self.url, self.clients, self.deadline_s, self.timeout_s, self.limit = url, clients, deadline_s, client_timeout_s, limit
        self.outcomes: list[dict] = []
        self.sent = 0
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.docs = [base64.b64encode(text_pdf(1 + n % 4, f"Load document {n}, page {{n}}.")).decode() for n in range(8)]
        self.threads = [threading.Thread(target=self._client, daemon=True) for _ in range(clients)]

    def start(self) -> "Load":
        for t in self.threads:
            t.start()
        return self

    def done(self) -> int:
        with self.lock:
            return len(self.outcomes)

    def stop(self) -> None:
        self.stopping.set()
        for t in self.threads:
            t.join(self.timeout_s + 30)

    def _client(self) -> None:
        import httpx

        with httpx.Client(base_url=self.url, timeout=self.timeout_s) as client:
            while not self.stopping.is_set():
                with self.lock:
                    if self.sent >= self.limit:
                        return
                    self.sent += 1
                    n = self.sent
                pages = 1 + n % 4
                body = {"file": self.docs[n % len(self.docs)], "fileType": 0, "deadlineSeconds": self.deadline_s}
                start = time.monotonic()
                outcome = {"sent_at": start, "pages": pages}
                try:
                    outcome.update(self._judge(client.post("/layout-parsing", json=body), pages))
                except httpx.TimeoutException:
                    outcome["kind"] = "hung"
                except httpx.HTTPError as exc:
                    outcome["kind"], outcome["detail"] = "connection_error", f"{type(exc).__name__}: {exc}"[:300]
                outcome["seconds"] = time.monotonic() - start
                with self.lock:
                    self.outcomes.append(outcome)

    @staticmethod
    def _judge(response, pages: int) -> dict:
        try:
            body = response.json()
        except ValueError:
            return {"kind": f"http_{response.status_code}_not_json", "detail": response.text[:300]}
        if response.status_code == 200:
            entries = body["result"]["layoutParsingResults"]
            failed = [e for e in entries if e["status"] != "ok"]
            if len(entries) == pages and not failed:
                return {"kind": "ok"}
            return {"kind": "ok_with_failed_pages", "detail": json.dumps([e.get("error") for e in failed])[:300]}
        clear = response.status_code in (503, 504) and "retry-after" in response.headers
        return {"kind": f"http_{response.status_code}" + ("_retry_after" if clear else ""),
                "detail": str(body.get("errorMsg"))[:300]}
