"""A long document three ways over HTTP on 127.0.0.1 with the offline CPU default: one blocking
``POST /layout-parsing``; the same call streamed (``Accept: application/x-ndjson``: when do the
first and the last page arrive); and an async job (``POST /jobs/layout-parsing``, polled: when is
the first page reported done, when is the result there).

    .venv/bin/python benchmarks/streaming.py [--pages 100]

Prints a table and writes ``benchmarks/results/streaming.json``.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
PORT = 8096


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=int, default=100)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "streaming.json"))
    args = parser.parse_args(argv)

    import httpx

    from devtools.documents import text_pdf
    from serve_app.launch import init_local_ray

    init_local_ray(log_to_driver=False)
    import ray
    from ray import serve

    from serve_app.app import build_app

    serve.start(http_options={"host": "127.0.0.1", "port": PORT})
    serve.run(build_app({"jobs": {"store": str(ROOT / "build" / "bench-jobs")}}), name="streaming")
    body = {"file": base64.b64encode(text_pdf(args.pages, "Page {n} of the long one.")).decode(), "visualize": False}
    client = httpx.Client(base_url=f"http://127.0.0.1:{PORT}", timeout=3600)
    client.post("/layout-parsing", json={**body, "pageRanges": "1-4"})  # warm-up

    start = time.perf_counter()
    sync = client.post("/layout-parsing", json=body)
    sync_s = time.perf_counter() - start
    assert sync.status_code == 200, sync.text[:300]

    start, first, pages = time.perf_counter(), None, 0
    with client.stream("POST", "/layout-parsing", json=body, headers={"Accept": "application/x-ndjson"}) as response:
        for line in response.iter_lines():
            event = json.loads(line)
            if event["event"] == "page":
                pages += 1
                first = first or time.perf_counter() - start
    stream_s = time.perf_counter() - start
    assert pages == args.pages

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
    assert result["errorCode"] == 0 and len(result["result"]["layoutParsingResults"]) == args.pages
    same = result["result"] == sync.json()["result"]
    client.delete(f"/jobs/{job_id}")
    serve.shutdown()
    ray.shutdown()

    report = {"pages": args.pages, "machine_cpus": len(os.sched_getaffinity(0)), "config": "offline CPU default",
              "sync_seconds": round(sync_s, 2),
              "stream": {"first_page_seconds": round(first, 2), "last_page_seconds": round(stream_s, 2),
                         "first_page_share": round(first / stream_s, 3)},
              "job": {"first_page_reported_seconds": round(job_first, 2), "result_seconds": round(job_s, 2),
                      "result_equals_sync": same}}
    print(f"{args.pages}-page born-digital PDF, offline CPU default, {report['machine_cpus']} cores")
    print(f"  blocking POST /layout-parsing        {sync_s:7.2f} s until anything arrives")
    print(f"  streamed (NDJSON)                    first page {first:6.2f} s, last {stream_s:6.2f} s "
          f"({first / stream_s:.1%} of the whole)")
    print(f"  job (polled every 0.1 s)             first page done {job_first:6.2f} s, result {job_s:6.2f} s "
          f"(equal to the blocking call's: {same})")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
