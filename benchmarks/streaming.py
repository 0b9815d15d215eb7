"""A long document three ways over HTTP on 127.0.0.1 with the offline CPU default: one blocking
``POST /layout-parsing``; the same call streamed (``Accept: application/x-ndjson``: when do the
first and the last page arrive); and an async job (``POST /jobs/layout-parsing``, polled: when is
the first page reported done, when is the result there).

    .venv/bin/python -m benchmarks.streaming [--pages 100]

Prints a table and writes ``benchmarks/results/streaming.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time

from benchmarks.harness import results
from benchmarks.harness.apps import app_config, label
from benchmarks.harness.corpora import text_pdf
from benchmarks.harness.load import request
from benchmarks.harness.server import LocalServe

PORT = 8096


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=int, default=100)
    args = parser.parse_args(argv)
    import httpx

    config = {**app_config("lite", name="streaming"), "jobs": {"store": tempfile.mkdtemp(prefix="bench-jobs-")}}
    with LocalServe(config, PORT) as server, httpx.Client(base_url=server.url, timeout=3600) as client:
        report = measure(client, args.pages)
    print(f"{args.pages}-page born-digital PDF, offline CPU default")
    stream, job = report["stream"], report["job"]
    print(f"  blocking POST /layout-parsing        {report['sync_seconds']:7.2f} s until anything arrives")
    print(f"  streamed (NDJSON)                    first page {stream['first_page_seconds']:6.2f} s, last "
          f"{stream['last_page_seconds']:6.2f} s ({stream['first_page_share']:.1%} of the whole)")
    print(f"  job (polled every 0.1 s)             first page done {job['first_page_reported_seconds']:6.2f} s, result "
          f"{job['result_seconds']:6.2f} s (equal to the blocking call's: {job['result_equals_sync']})")
    results.write("streaming", report, label("lite"))
    return 0


def measure(client, pages: int) -> dict:
    body = request(text_pdf(pages, "Page {n} of the long one."), visualize=False)
    client.post("/layout-parsing", json={**body, "pageRanges": "1-4"})  # warm-up
    start = time.perf_counter()
    sync = client.post("/layout-parsing", json=body)
    sync_s = time.perf_counter() - start
    assert sync.status_code == 200, sync.text[:300]

    start, first, streamed = time.perf_counter(), None, 0
    with client.stream("POST", "/layout-parsing", json=body, headers={"Accept": "application/x-ndjson"}) as response:
        for line in response.iter_lines():
            event = json.loads(line)
            if event["event"] == "page":
                streamed += 1
                first = first or time.perf_counter() - start
    stream_s = time.perf_counter() - start
    assert streamed == pages

    start = time.perf_counter()
    job_id = client.post("/jobs/layout-parsing", json=body).json()["result"]["jobId"]
    job_first = None
    while True:
        status = client.get(f"/jobs/{job_id}").json()["result"]
        if status["pagesDone"] and job_first is None:
            job_first = time.perf_counter() - start
        if status["status"] not in ("queued", "running"):
            break
        time.sleep(0.1)
    result = client.get(f"/jobs/{job_id}/result").json()
    job_s = time.perf_counter() - start
    assert result["errorCode"] == 0 and len(result["result"]["layoutParsingResults"]) == pages
    same = result["result"] == sync.json()["result"]
    client.delete(f"/jobs/{job_id}")
    return {"pages": pages, "config": "offline CPU default", "sync_seconds": round(sync_s, 2),
            "stream": {"first_page_seconds": round(first, 2), "last_page_seconds": round(stream_s, 2),
                       "first_page_share": round(first / stream_s, 3)},
            "job": {"first_page_reported_seconds": round(job_first, 2), "result_seconds": round(job_s, 2),
                    "result_equals_sync": same}}


if __name__ == "__main__":
    sys.exit(main())
