"""Bulk throughput and memory: `serve_app.bulk` (Ray Data: rendering tasks, layout and recognition
actor pools, driver-side reassembly and Parquet shards) over a generated corpus of 10-page PDFs,
against a plain loop over the same stages in one process (render → layout → recognize → assemble,
one page at a time). With ``--memory`` it runs the job at two corpus sizes and samples the peak
resident memory of the driver and of the Ray worker processes (engine processes included) every
second, the object store apart: flat is the goal. Single-node Ray on 127.0.0.1, the CPUs of this machine.

    .venv/bin/python benchmarks/bulk_throughput.py --setup tiny|lite [--pages 500] [--memory 100,1000]
    .venv/bin/python benchmarks/bulk_throughput.py --setup simulated --pages 10000 [--profile rtx5090]

Setups as in serve_throughput.py: ``lite`` (PP-Layout CDLA + PP-OCRv6 on CPU), ``tiny`` (tiny
PP-DocLayoutV2 on transformers + tiny PaddleOCR-VL on vLLM's CPU build, 32 new tokens per block).
Prints the figures and writes benchmarks/results/bulk_throughput_<setup>.json.

``simulated`` (the simulated engines, figures labelled "simulated <profile>") is the long run: the
job at 1,000 and at ``--pages`` pages with peak memory of the driver and of every worker; then a
driver (``python -m serve_app.bulk`` against this benchmark's Ray) SIGKILLed when a random number
of documents is committed, and resubmitted: documents lost, written twice, and parsed again although
committed; and what one document's commit costs. Writes benchmarks/results/bulk_10k.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "benchmarks")]

import psutil  # noqa: E402

from devtools.documents import text_pdf  # noqa: E402
from gpu_regime import ray_title  # noqa: E402
from serve_throughput import app_config, sequential  # noqa: E402

PAGES_PER_DOC = 10


def corpus(root: Path, pages: int) -> list[bytes]:
    root.mkdir(parents=True, exist_ok=True)
    docs = [text_pdf(PAGES_PER_DOC, f"Document {i}, page {{n}}: a short line to read. ")
            for i in range(pages // PAGES_PER_DOC)]
    for i, data in enumerate(docs):
        (root / f"doc{i:05d}.pdf").write_bytes(data)
    return docs


class PeakMemory:
    """Peak memory of this process (the driver) and of its descendant Ray worker processes (actors,
    tasks and the engine processes they start), sampled. PSS: shared pages (shared libraries) are
    split between the processes that map them, so a total counts them once. The object store is
    counted apart (``object_store``): every worker maps it, and the pages a worker once wrote there
    stay in its PSS whether or not they still hold a live object, so over a long run a worker's PSS
    grows towards its share of the store's size (bounded by ``--object-store-gb`` and Ray's own
    store size) without any memory of its own growing. ``by_name``: the peak of each kind of
    worker (its process title), without the object store."""

    def __init__(self, every_s: float = 1.0):
        self.every_s, self.driver, self.workers, self.largest, self.largest_name = every_s, 0, 0, 0, ""
        self.object_store = 0
        self.by_name: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        me = psutil.Process()
        while not self._stop.wait(self.every_s):
            self.driver = max(self.driver, _pss(me)[0])
            sizes, store = [], 0
            for proc in me.children(recursive=True):
                try:
                    if any(p.name().startswith("ray::") for p in (proc, *proc.parents())):
                        own, shared = _pss(proc)
                        # the full title, not the 15-character process name
                        sizes.append((own, ray_title(proc.cmdline()[0])))
                        store += shared
                except (psutil.Error, IndexError):
                    continue
            self.workers = max(self.workers, sum(size for size, _ in sizes))
            self.object_store = max(self.object_store, store)
            self.largest, self.largest_name = max([(self.largest, self.largest_name), *sizes])
            for size, name in sizes:
                if not name.startswith("ray::IDLE"):
                    self.by_name[name] = max(self.by_name.get(name, 0), size)


def _pss(proc: psutil.Process) -> tuple[int, int]:
    """(PSS outside the object store, PSS of the object store's mapping: /dev/shm/plasma*)."""
    own = shared = 0
    for mapping in proc.memory_maps(grouped=True):
        if mapping.path.startswith("/dev/shm/plasma"):
            shared += mapping.pss
        else:
            own += mapping.pss
    return own, shared


def steady_rate(output: Path) -> float:
    """Pages/s between the first and the last finished document (start-up left out)."""
    import pyarrow.parquet as pq
    from datetime import datetime

    rows = sorted(pq.read_table(output / "parquet", columns=["finished_at", "page_count"]).to_pylist(),
                  key=lambda r: r["finished_at"])
    span = datetime.fromisoformat(rows[-1]["finished_at"]) - datetime.fromisoformat(rows[0]["finished_at"])
    return sum(r["page_count"] for r in rows[1:]) / max(span.total_seconds(), 1e-9)


def bulk(input_dir: Path, output: Path, app: dict, **settings) -> tuple[float, int, PeakMemory]:
    from serve_app.bulk import BulkConfig, run

    config = BulkConfig(input=str(input_dir), output=str(output), app=app,
                        **{"render_num_cpus": 0.5, "recognize_batch": 32, "shard_size": 16, "progress_every_s": 30,
                           **settings})
    with PeakMemory() as memory:
        start = time.perf_counter()
        code = run(config)
        wall = time.perf_counter() - start
    summary = json.loads((output / "_SUMMARY.json").read_text())
    assert code == 0 and summary["by_status"] == {"ok": summary["documents"]}, summary
    return summary["pages"] / wall, summary["pages"], memory


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--setup", choices=["lite", "tiny", "simulated"], default="tiny")
    parser.add_argument("--profile", default="rtx5090", help="With --setup simulated: the simulated card")
    parser.add_argument("--seed", type=int, default=None, help="With --setup simulated: the kill moment's seed")
    parser.add_argument("--pages", type=int, default=500)
    parser.add_argument("--memory", default="", help="Corpus sizes for the memory runs, e.g. 100,1000")
    parser.add_argument("--skip-loop", action="store_true", help="Leave out the plain-loop baseline.")
    args = parser.parse_args()
    if args.setup == "simulated":
        from bulk_long import long_run

        return long_run(args.pages, args.profile, args.seed)
    from serve_app.launch import init_local_ray

    tmp = Path(tempfile.mkdtemp(prefix="bulk-bench-"))
    app = app_config(args.setup)
    init_local_ray(log_to_driver=False,
                   runtime_env={"env_vars": {"VLLM_PLUGINS": "", "VLLM_HOST_IP": "127.0.0.1", "HF_HUB_OFFLINE": "1"}})
    import ray  # after init_local_ray, which must come before ray's first import
    report: dict = {"setup": args.setup, "cores": os.cpu_count(), "pages_per_doc": PAGES_PER_DOC}
    try:  # the corpora and the jobs' outputs are removed at the end, whatever happens
        docs = corpus(tmp / "corpus", args.pages)
        rate, pages, _ = bulk(tmp / "corpus", tmp / "out", app)
        steady = steady_rate(tmp / "out")
        report["bulk"] = {"pages": pages, "pages_per_s": round(rate, 2), "steady_pages_per_s": round(steady, 2)}
        print(f"bulk job: {pages} pages, {rate:.2f} pages/s with start-up, {steady:.2f} pages/s after the first "
              "document", flush=True)
        for size in [int(s) for s in args.memory.split(",") if s]:
            corpus(tmp / f"corpus-{size}", size)
            _, pages, memory = bulk(tmp / f"corpus-{size}", tmp / f"out-{size}", app)
            row = {"pages": pages, "driver_peak_mb": memory.driver >> 20, "workers_peak_total_mb": memory.workers >> 20,
                   "largest_worker_peak_mb": memory.largest >> 20, "largest_worker": memory.largest_name}
            report.setdefault("memory", []).append(row)
            print(f"memory at {pages} pages: driver {row['driver_peak_mb']} MB, workers {row['workers_peak_total_mb']} MB "
                  f"in all, largest worker {row['largest_worker_peak_mb']} MB ({memory.largest_name})", flush=True)
    finally:
        ray.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)
    if not args.skip_loop:
        loop = sequential(docs, app)
        report["plain_loop_pages_per_s"] = round(loop, 2)
        report["ratio"], report["steady_ratio"] = round(rate / loop, 2), round(steady / loop, 2)
        print(f"plain loop: {loop:.2f} pages/s; bulk / loop = {rate / loop:.2f} ({steady / loop:.2f} after "
              "start-up)", flush=True)
    out = ROOT / "benchmarks" / "results"
    out.mkdir(exist_ok=True)
    (out / f"bulk_throughput_{args.setup}.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report))


if __name__ == "__main__":
    main()
