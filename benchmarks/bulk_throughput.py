"""Bulk throughput and memory: ``serve_app.bulk`` (Ray Data: rendering tasks, layout and recognition
actor pools, driver-side reassembly and Parquet shards) over a generated corpus of 10-page PDFs,
against the pipeline in one process one page at a time. With ``--memory`` the job runs at two
corpus sizes with the peak PSS of the driver and of every Ray worker sampled (object store apart):
flat is the goal. Single-node Ray on 127.0.0.1. Setups ``lite`` and ``tiny`` (``harness.apps``);
the long simulated run is ``benchmarks.bulk_long``. Writes ``benchmarks/results/bulk_throughput_<setup>.json``.

    .venv/bin/python -m benchmarks.bulk_throughput --setup tiny|lite [--pages 500] [--memory 100,1000]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import time
from pathlib import Path

from benchmarks.harness import results
from benchmarks.harness.apps import app_config, label
from benchmarks.harness.bulk import memory_row, run_bulk, steady_rate
from benchmarks.harness.corpora import pdf_corpus
from benchmarks.harness.inprocess import InProcess
from benchmarks.harness.server import start_ray

PAGES_PER_DOC = 10


def plain_loop(paths: list[Path], config: dict) -> float:
    """Pages/s of the pipeline in one process, one page at a time."""
    async def run() -> float:
        async with InProcess(config, one_page_at_a_time=True) as local:
            start = time.perf_counter()
            pages = sum([len((await local.parse(p.read_bytes())).pages) for p in paths])
            return pages / (time.perf_counter() - start)

    return asyncio.run(run())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--setup", choices=["lite", "tiny"], default="tiny")
    parser.add_argument("--pages", type=int, default=500)
    parser.add_argument("--memory", default="", help="Corpus sizes for the memory runs, e.g. 100,1000")
    parser.add_argument("--skip-loop", action="store_true", help="Leave out the plain-loop baseline.")
    args = parser.parse_args()
    tmp, app = Path(tempfile.mkdtemp(prefix="bulk-bench-")), app_config(args.setup)
    start_ray()
    import ray

    report: dict = {"setup": args.setup, "pages_per_doc": PAGES_PER_DOC}
    try:  # the corpora and the jobs' outputs are removed at the end, whatever happens
        paths = pdf_corpus(tmp / "corpus", args.pages, PAGES_PER_DOC)
        rate, pages, _ = run_bulk(tmp / "corpus", tmp / "out", app)
        steady = steady_rate(tmp / "out")
        report["bulk"] = {"pages": pages, "pages_per_s": round(rate, 2), "steady_pages_per_s": round(steady, 2)}
        print(f"bulk job: {pages} pages, {rate:.2f} pages/s with start-up, {steady:.2f} pages/s after the first "
              "document", flush=True)
        for size in [int(s) for s in args.memory.split(",") if s]:
            pdf_corpus(tmp / f"corpus-{size}", size, PAGES_PER_DOC)
            size_rate, size_pages, memory = run_bulk(tmp / f"corpus-{size}", tmp / f"out-{size}", app)
            row = memory_row(size_pages, size_rate, memory)
            report.setdefault("memory", []).append(row)
            print(f"memory at {size_pages} pages: driver {row['driver_peak_mb']} MB, workers "
                  f"{row['workers_peak_total_mb']} MB in all, largest worker {row['largest_worker_peak_mb']} MB "
                  f"({row['largest_worker']})", flush=True)
        ray.shutdown()
        if not args.skip_loop:
            loop = plain_loop(paths, app)
            report.update({"plain_loop_pages_per_s": round(loop, 2), "ratio": round(rate / loop, 2),
                           "steady_ratio": round(steady / loop, 2)})
            print(f"plain loop: {loop:.2f} pages/s; bulk / loop = {rate / loop:.2f} ({steady / loop:.2f} after "
                  "start-up)", flush=True)
    finally:
        ray.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)
    results.write(f"bulk_throughput_{args.setup}", report, label(args.setup))


if __name__ == "__main__":
    main()
