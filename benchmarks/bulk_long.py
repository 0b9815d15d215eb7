"""The long bulk run, on the simulated engines (every figure "simulated <profile>"): bulk jobs over
1,000 and ``--pages`` pages of 10-page PDFs with the peak PSS of the driver and of every worker
(object store apart: flat is the goal); a worker node SIGKILLed mid-job on a two-node cluster of
its own (the job must complete with every document once); and what committing one document costs.
Writes ``benchmarks/results/bulk_10k.json``. (A driver stopped or SIGKILLed and resubmitted:
``benchmarks.bulk_exactly_once``.)

    .venv/bin/python -m benchmarks.bulk_long [--pages 10000] [--profile rtx5090]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.harness import results
from benchmarks.harness.apps import app_config, label
from benchmarks.harness.bulk import memory_row, run_bulk
from benchmarks.harness.corpora import pdf_corpus
from benchmarks.harness.processes import ray_title
from benchmarks.harness.results import ROOT
from benchmarks.harness.server import LocalCluster, start_ray

PAGES_PER_DOC = 10
SETTINGS = {"render_num_cpus": 0.25, "recognize_batch": 64, "shard_size": 64, "progress_every_s": 120}
NODE_PAGES = 300


def memory_at(tmp: Path, pages: int, app: dict) -> dict:
    pdf_corpus(tmp / f"corpus-{pages}", pages, PAGES_PER_DOC)
    rate, parsed, memory = run_bulk(tmp / f"corpus-{pages}", tmp / f"out-{pages}", app, **SETTINGS)
    row = memory_row(parsed, rate, memory)
    print(f"  {row['pages']} pages at {row['pages_per_s']:.2f} pages/s: driver {row['driver_peak_mb']} MB, workers "
          f"{row['workers_peak_total_mb']} MB in all, largest {row['largest_worker_peak_mb']} MB (object store apart: "
          f"{row['object_store_peak_mb']} MB)", flush=True)
    return row


def committed_sources(output: Path) -> set[str]:
    from serve_app.bulk.output import Output

    return Output(str(output)).committed_sources()


def node_loss(tmp: Path, app: dict) -> dict:
    """A job on a two-node Ray cluster of its own (``LocalCluster``, 127.0.0.1) whose second node
    is killed (SIGKILL to its raylet and every process under it) while it runs pipeline workers:
    Ray Data restarts their actors and retries their tasks on the head; the job must complete with
    every document once."""
    import psutil
    import pyarrow.parquet as pq
    import yaml


    def pipeline_workers(pid: int) -> list[str]:
        names = []
        for proc in psutil.Process(pid).children(recursive=True):
            try:
                title = proc.cmdline()[0] if proc.cmdline() else ""
            except psutil.Error:
                continue
            if title.startswith("ray::") and any(k in title for k in ("MapWorker", "FlatMap", "ReadRange")):
                names.append(ray_title(title))
        return names

    pdf_corpus(tmp / "corpus-node", NODE_PAGES, PAGES_PER_DOC)
    (tmp / "app.yaml").write_text(yaml.safe_dump(app))
    output = tmp / "out-node"
    cluster = LocalCluster()
    cluster.start(head_cpus=4, node_cpus=4, object_store_mb=1000)  # either node can hold the job
    try:
        node = cluster.procs[1]
        command = [sys.executable, "-m", "serve_app.bulk", "--input", str(tmp / "corpus-node"), "--output", str(output),
                   "--config", str(tmp / "app.yaml"), "--render-num-cpus", "0.25", "--recognize-batch", "64",
                   "--layout-workers", "2", "--recognize-workers", "2", "--shard-size", "8", "--progress-every-s", "120"]
        job = subprocess.Popen(command, env={**os.environ, "RAY_ADDRESS": cluster.address}, cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        began = time.monotonic()
        while job.poll() is None and not (pipeline_workers(node.pid) and len(committed_sources(output)) >= 2):
            time.sleep(0.2)
        running = pipeline_workers(node.pid)
        at_kill, killed_at_s = len(committed_sources(output)), round(time.monotonic() - began, 1)
        cluster.kill_node(node)
        try:
            logs, _ = job.communicate(timeout=1800)
        except subprocess.TimeoutExpired:
            job.kill()
            logs, _ = job.communicate()
    finally:
        cluster.stop()
    sources = pq.read_table(output / "parquet", columns=["source"]).column("source").to_pylist() \
        if (output / "parquet").exists() else []
    expected = {str(p) for p in (tmp / "corpus-node").iterdir()}
    row = {"documents": len(expected), "killed_after_s": killed_at_s, "committed_at_kill": at_kill,
           "workers_on_the_killed_node": sorted(set(running)), "job_exit_code": job.returncode,
           "completed": job.returncode == 0, "lost": len(expected - set(sources)),
           "duplicated": len(sources) - len(set(sources)), "seconds": round(time.monotonic() - began, 1)}
    if job.returncode != 0:
        row["log_tail"] = logs[-2000:]
    print(f"  node killed after {killed_at_s} s ({at_kill} documents committed; it ran {row['workers_on_the_killed_node']}):"
          f" job exit {job.returncode}, lost {row['lost']}, duplicated {row['duplicated']}", flush=True)
    return row


def commit_cost(tmp: Path) -> dict:
    """One document's commit (a JSON file written, synced, renamed) and its share of compaction,
    on rows of the 1,000-page run (10-page documents)."""
    import pyarrow.parquet as pq

    from serve_app.bulk.output import Output

    rows = pq.read_table(tmp / "out-1000" / "parquet").to_pylist()[:64]
    output = Output(str(tmp / "commit-cost"))
    start = time.perf_counter()
    for row in rows:
        output.commit(row)
    commit = (time.perf_counter() - start) / len(rows)
    start = time.perf_counter()
    output.compact(rows)
    compact = (time.perf_counter() - start) / len(rows)
    size = sum(len(json.dumps(r, ensure_ascii=False)) for r in rows) / len(rows)
    return {"commit_ms_per_document": round(1000 * commit, 2), "compaction_ms_per_document": round(1000 * compact, 2),
            "committed_bytes_per_document": int(size), "pages_per_document": PAGES_PER_DOC}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=10000)
    parser.add_argument("--profile", default="rtx5090")
    args = parser.parse_args()
    if args.pages <= 1000:
        parser.error("--pages must be above 1,000: the large run is compared with a 1,000-page one")
    tmp, app = Path(tempfile.mkdtemp(prefix="bulk-long-")), app_config("simulated", profile=args.profile)
    start_ray()
    import ray

    print(f"{label('simulated', args.profile)}: bulk jobs of 1,000 and {args.pages:,} pages ({PAGES_PER_DOC}-page "
          "documents)", flush=True)
    try:  # the corpora and the jobs' outputs are removed at the end, whatever happens
        small, large = memory_at(tmp, 1000, app), memory_at(tmp, args.pages, app)
        ray.shutdown()
        cost = commit_cost(tmp)
        node = node_loss(tmp, app)
    finally:
        ray.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)

    def ratio(a: int, b: int) -> float:
        return round(b / a, 3) if a else float("nan")

    ratios = {"driver": ratio(small["driver_peak_mb"], large["driver_peak_mb"]),
              "workers_total": ratio(small["workers_peak_total_mb"], large["workers_peak_total_mb"]),
              **{name: ratio(mb, large["peak_mb_by_worker"][name])
                 for name, mb in small["peak_mb_by_worker"].items() if name in large["peak_mb_by_worker"]}}
    worst = max(ratios.values(), key=lambda r: abs(r - 1))
    report = {"profile": args.profile, "pages_per_document": PAGES_PER_DOC, "settings": SETTINGS, "memory_1k": small,
              "memory_large": large, "memory_ratios_large_vs_1k": ratios, "memory_ratio_10k_vs_1k": worst,
              "memory_within_10pct": abs(worst - 1) <= 0.10, "commit_cost": cost, "worker_node_killed": node}
    print(f"\npeak memory at {large['pages']:,} pages over 1,000 pages (driver, all workers, each kind):")
    for name, r in ratios.items():
        print(f"  {name:<56}{r:>7.3f}")
    print(f"worst {worst} ({'within' if report['memory_within_10pct'] else 'outside'} ±10 %); commit "
          f"{cost['commit_ms_per_document']} ms a document (+{cost['compaction_ms_per_document']} ms compaction); "
          f"worker node killed mid-job: job {'completed' if node['completed'] else 'FAILED'}, lost {node['lost']}, "
          f"duplicated {node['duplicated']}")
    results.write("bulk_10k", report, label("simulated", args.profile))
    return 0


if __name__ == "__main__":
    sys.exit(main())
