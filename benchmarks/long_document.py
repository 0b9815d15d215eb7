"""Long documents through ``POST /layout-parsing`` with the default settings (simulated engines,
127.0.0.1): a 1,000-page PDF whole, and a 2,000-page PDF with ``pageRanges`` selecting 1,000 of its
pages; then the 1,000 pages streamed (``Accept: application/x-ndjson``). Reports the wall time, the
response's size and the peak memory (PSS, the object store apart, sampled every 0.5 s) of the ingress replica
(which holds a whole-document answer until it is complete) and of the other stages' replicas.

    .venv/bin/python -m benchmarks.long_document [--pages 1000] [--profile rtx5090] [--no-visualize]

The server's defaults throughout: ``visualize`` on (the official default: every page carries its
layout images) unless ``--no-visualize``. Writes benchmarks/results/long_document.json; figures
are "simulated <profile>".
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from benchmarks.harness import results
from benchmarks.harness.apps import app_config, label
from benchmarks.harness.corpora import text_pdf
from benchmarks.harness.load import request
from benchmarks.harness.memory import PeakPss
from benchmarks.harness.server import LocalServe

APP = "long"
STAGES = ("ingress", "renderer", "layout", "recognizer")


def one(server: LocalServe, client, pdf: bytes, pages_expected: int, stream: bool = False, **options) -> dict:
    sampler = PeakPss({stage: server.replica_pids(stage)[0] for stage in STAGES})
    sampler.start()
    start = time.perf_counter()
    body = request(pdf, **options)
    if stream:
        size, entries = 0, []
        with client.stream("POST", "/layout-parsing", json=body, headers={"Accept": "application/x-ndjson"}) as r:
            for line in r.iter_lines():
                size += len(line) + 1
                event = json.loads(line)
                assert event["event"] != "error", event
                if event["event"] == "page":
                    entries.append({"status": event["result"]["status"]})
    else:
        response = client.post("/layout-parsing", json=body)
        size = len(response.content)
        body = response.json()
        assert response.status_code == 200 and body["errorCode"] == 0, body.get("errorMsg")
        entries = body["result"]["layoutParsingResults"]
    wall = time.perf_counter() - start
    memory = sampler.stop()
    ok = sum(e["status"] == "ok" for e in entries)
    assert len(entries) == pages_expected, len(entries)
    return {"pages": len(entries), "pages_ok": ok, "seconds": round(wall, 1), "pages_per_s": round(len(entries) / wall, 2),
            "response_mb": round(size / 2**20, 1), "pss_by_stage": memory}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=int, default=1000)
    parser.add_argument("--profile", default="rtx5090")
    parser.add_argument("--no-visualize", dest="visualize", action="store_false")
    parser.add_argument("--port", type=int, default=8099)
    args = parser.parse_args(argv)
    import httpx

    from serve_app.config import load_config

    config = app_config("simulated", profile=args.profile, visualize=args.visualize, name=APP)
    report = {"profile": args.profile, "visualize": args.visualize,
              "ingress_timeout_s": load_config(config).ingress.timeout_s}
    with LocalServe(config, args.port) as server, httpx.Client(base_url=server.url, timeout=3600) as client:
        whole = text_pdf(args.pages, "Long document, page {n}: a line of text to read.")
        report["whole"] = one(server, client, whole, args.pages)
        print(f"{args.pages} pages: {report['whole']}", flush=True)
        double = text_pdf(2 * args.pages, "Longer document, page {n}.")
        ranges = f"1-{args.pages // 2},{2 * args.pages - args.pages // 2 + 1}-{2 * args.pages}"
        report["ranges"] = {"document_pages": 2 * args.pages, "pageRanges": ranges,
                            **one(server, client, double, args.pages, pageRanges=ranges)}
        print(f"{2 * args.pages} pages, pageRanges {ranges}: {report['ranges']}", flush=True)
        report["streamed"] = one(server, client, whole, args.pages, stream=True)
        print(f"{args.pages} pages streamed: {report['streamed']}", flush=True)
    print(f"\n{label('simulated', args.profile)}, default settings (visualize {args.visualize})")
    print(f"{'run':<34}{'pages':>7}{'s':>8}{'pages/s':>9}{'response MB':>13}{'ingress peak MB':>17}")
    for name, row in (("whole", report["whole"]), ("pageRanges of twice as many", report["ranges"]),
                      ("streamed (NDJSON)", report["streamed"])):
        print(f"{name:<34}{row['pages']:>7}{row['seconds']:>8}{row['pages_per_s']:>9}{row['response_mb']:>13}"
              f"{row['pss_by_stage']['ingress']['peak_mb']:>17}")
    results.write("long_document", report, label("simulated", args.profile))
    return 0


if __name__ == "__main__":
    sys.exit(main())
