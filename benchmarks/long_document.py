"""Long documents through ``POST /layout-parsing`` with the default settings (simulated engines,
127.0.0.1): a 1,000-page PDF whole, and a 2,000-page PDF with ``pageRanges`` selecting 1,000 of its
pages; then the 1,000 pages streamed (``Accept: application/x-ndjson``). Reports the wall time, the
response's size and the peak resident memory (RSS, sampled every 0.5 s) of the ingress replica
(which holds a whole-document answer until it is complete) and of the other stages' replicas.

    .venv/bin/python benchmarks/long_document.py [--pages 1000] [--profile rtx5090] [--no-visualize]

The server's defaults throughout: ``visualize`` on (the official default: every page carries its
layout images) unless ``--no-visualize``. Writes benchmarks/results/long_document.json; figures
are "simulated <profile>".
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import os
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "benchmarks")]

from chaos import app_config, replica_pids  # noqa: E402
from devtools.documents import text_pdf  # noqa: E402

APP = "long"
STAGES = ("ingress", "renderer", "layout", "recognizer")


class PeakRss(threading.Thread):
    """Peak RSS of each stage's replica, sampled every ``every_s``."""

    def __init__(self, every_s: float = 0.5):
        super().__init__(daemon=True)
        import psutil

        self.procs = {stage: psutil.Process(replica_pids(stage, APP)[0]) for stage in STAGES}
        self.peak = dict.fromkeys(STAGES, 0)
        self.start_rss = {stage: proc.memory_info().rss for stage, proc in self.procs.items()}
        self.every_s, self.stopping = every_s, threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(self.every_s):
            for stage, proc in self.procs.items():
                self.peak[stage] = max(self.peak[stage], proc.memory_info().rss)

    def stop(self) -> dict:
        self.stopping.set()
        self.join()
        return {stage: {"before_mb": self.start_rss[stage] >> 20, "peak_mb": self.peak[stage] >> 20}
                for stage in STAGES}


def one(client, pdf: bytes, pages_expected: int, stream: bool = False, **options) -> dict:
    sampler = PeakRss()
    sampler.start()
    start = time.perf_counter()
    request = {"file": base64.b64encode(pdf).decode(), "fileType": 0, **options}
    if stream:
        size, entries = 0, []
        with client.stream("POST", "/layout-parsing", json=request, headers={"Accept": "application/x-ndjson"}) as r:
            for line in r.iter_lines():
                size += len(line) + 1
                event = json.loads(line)
                assert event["event"] != "error", event
                if event["event"] == "page":
                    entries.append({"status": event["result"]["status"]})
    else:
        response = client.post("/layout-parsing", json=request)
        size = len(response.content)
        body = response.json()
        assert response.status_code == 200 and body["errorCode"] == 0, body.get("errorMsg")
        entries = body["result"]["layoutParsingResults"]
    wall = time.perf_counter() - start
    memory = sampler.stop()
    ok = sum(e["status"] == "ok" for e in entries)
    assert len(entries) == pages_expected, len(entries)
    return {"pages": len(entries), "pages_ok": ok, "seconds": round(wall, 1), "pages_per_s": round(len(entries) / wall, 2),
            "response_mb": round(size / 2**20, 1), "rss_by_stage": memory}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=int, default=1000)
    parser.add_argument("--profile", default="rtx5090")
    parser.add_argument("--no-visualize", dest="visualize", action="store_false")
    parser.add_argument("--port", type=int, default=8099)
    args = parser.parse_args(argv)
    import httpx

    from serve_app.app import build_app, reserved_cpus
    from serve_app.config import load_config
    from serve_app.launch import init_local_ray

    config = {**app_config(args.profile), "name": APP, "ingress": {"visualize": args.visualize}}  # else defaults
    init_local_ray(log_to_driver=False, num_cpus=math.ceil(reserved_cpus(load_config(config))) + 1)
    import ray
    from ray import serve

    serve.start(http_options={"host": "127.0.0.1", "port": args.port})
    serve.run(build_app(config), name=APP)
    label = f"simulated {args.profile}"
    report = {"label": label, "profile": args.profile, "visualize": args.visualize,
              "ingress_timeout_s": load_config(config).ingress.timeout_s, "machine_cpus": len(os.sched_getaffinity(0))}
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{args.port}", timeout=3600) as client:
            whole = text_pdf(args.pages, "Long document, page {n}: a line of text to read.")
            report["whole"] = one(client, whole, args.pages)
            print(f"{args.pages} pages: {report['whole']}", flush=True)
            double = text_pdf(2 * args.pages, "Longer document, page {n}.")
            ranges = f"1-{args.pages // 2},{2 * args.pages - args.pages // 2 + 1}-{2 * args.pages}"
            report["ranges"] = {"document_pages": 2 * args.pages, "pageRanges": ranges,
                                **one(client, double, args.pages, pageRanges=ranges)}
            print(f"{2 * args.pages} pages, pageRanges {ranges}: {report['ranges']}", flush=True)
            report["streamed"] = one(client, whole, args.pages, stream=True)
            print(f"{args.pages} pages streamed: {report['streamed']}", flush=True)
    finally:
        serve.shutdown()
        ray.shutdown()
    print(f"\n{label}, default settings (visualize {args.visualize})")
    print(f"{'run':<34}{'pages':>7}{'s':>8}{'pages/s':>9}{'response MB':>13}{'ingress peak MB':>17}")
    for name, row in (("whole", report["whole"]), ("pageRanges of twice as many", report["ranges"]),
                      ("streamed (NDJSON)", report["streamed"])):
        print(f"{name:<34}{row['pages']:>7}{row['seconds']:>8}{row['pages_per_s']:>9}{row['response_mb']:>13}"
              f"{row['rss_by_stage']['ingress']['peak_mb']:>17}")
    out = ROOT / "benchmarks" / "results" / "long_document.json"
    out.write_text(json.dumps(report, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
