"""Throughput and latency through HTTP for 1, 4 and 16 concurrent clients, against the same stages
in one process one page after another (the official basic server's design: concurrency 1).

Setups (``harness.apps``): ``lite`` (the offline CPU default, CPU-bound) or ``tiny`` (the GPU-path
engines on tiny checkpoints: what continuous batching across requests buys); one-page documents on
127.0.0.1. Writes ``benchmarks/results/serve_throughput_<setup>.json``.

    .venv/bin/python -m benchmarks.serve_throughput [--setup lite|tiny] [--docs 24]
"""

from __future__ import annotations

import argparse
import asyncio
import time

from benchmarks.harness import results
from benchmarks.harness.apps import app_config, label
from benchmarks.harness.corpora import paper_pdf, text_pdf
from benchmarks.harness.inprocess import InProcess
from benchmarks.harness.load import through_http
from benchmarks.harness.server import LocalServe

PORT = 8099


def documents(n: int) -> list[bytes]:
    return [paper_pdf() if i % 2 else text_pdf(1, f"Document {i}, page {{n}}: " + "words to read here. " * 12)
            for i in range(n)]


def sequential(docs: list[bytes], config: dict) -> float:
    """Pages/s of the pipeline in one process, one page at a time (one page a document here)."""
    async def run() -> float:
        async with InProcess(config, one_page_at_a_time=True) as local:
            start = time.perf_counter()
            pages = sum([len((await local.parse(data)).pages) for data in docs])
            return pages / (time.perf_counter() - start)

    return asyncio.run(run())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=24)
    parser.add_argument("--setup", choices=["lite", "tiny"], default="lite")
    args = parser.parse_args()
    docs, config = documents(args.docs), app_config(args.setup)
    with LocalServe(config, PORT) as server:
        through_http(server.url, docs[:2], 2, visualize=False)  # warm-up
        rows = [through_http(server.url, docs, c, visualize=False) for c in (1, 4, 16)]
    base = sequential(docs, config)
    print(f"{args.docs} one-page documents, setup {args.setup}")
    print(f"{'clients':>8}{'pages/s':>10}{'p50 s':>8}{'p95 s':>8}{'p99 s':>8}{'errors':>8}{'vs seq':>8}")
    for r in rows:
        r["pages_per_s"] = r.pop("documents_per_s")
        print(f"{r['clients']:>8}{r['pages_per_s']:>10.2f}{r['p50_s']:>8.2f}{r['p95_s']:>8.2f}{r['p99_s']:>8.2f}"
              f"{r['errors']:>8}{r['pages_per_s'] / base:>8.2f}")
    print(f"{'in-process, one page at a time':<40}{base:>8.2f} pages/s")
    results.write(f"serve_throughput_{args.setup}", {"setup": args.setup, "http": rows, "sequential_pages_per_s": base},
                  label(args.setup))


if __name__ == "__main__":
    main()
