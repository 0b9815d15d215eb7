"""The long bulk run of ``bulk_throughput.py --setup simulated`` (see its docstring): memory at two
corpus sizes, a SIGKILLed driver resubmitted, and the cost of committing one document."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from bulk_throughput import PAGES_PER_DOC, ROOT, bulk, corpus
from gpu_regime import app_config as simulated_app, ray_title

SETTINGS = {"render_num_cpus": 0.25, "recognize_batch": 64, "shard_size": 64, "progress_every_s": 120}
KILL_PAGES = 300


def memory_at(tmp: Path, pages: int, app: dict) -> dict:
    corpus(tmp / f"corpus-{pages}", pages)
    rate, parsed, memory = bulk(tmp / f"corpus-{pages}", tmp / f"out-{pages}", app, **SETTINGS)
    row = {"pages": parsed, "pages_per_s": round(rate, 2), "driver_peak_mb": memory.driver >> 20,
           "workers_peak_total_mb": memory.workers >> 20, "object_store_peak_mb": memory.object_store >> 20,
           "largest_worker_peak_mb": memory.largest >> 20,
           "largest_worker": memory.largest_name, "peak_mb_by_worker": {k: v >> 20 for k, v in memory.by_name.items()}}
    print(f"  {parsed} pages at {rate:.2f} pages/s: driver {row['driver_peak_mb']} MB, workers "
          f"{row['workers_peak_total_mb']} MB in all, largest {row['largest_worker_peak_mb']} MB (object store apart: "
          f"{row['object_store_peak_mb']} MB)", flush=True)
    return row


def committed_sources(output: Path) -> set[str]:
    from serve_app.bulk.output import Output

    return Output(str(output)).committed_sources()


def sigkill_and_resubmit(tmp: Path, app: dict, seed: int) -> dict:
    """A driver on this benchmark's Ray, SIGKILLed once a random number of documents is committed;
    then the same job again."""
    import ray
    import yaml

    corpus(tmp / "corpus-kill", KILL_PAGES)
    docs = KILL_PAGES // PAGES_PER_DOC
    (tmp / "app.yaml").write_text(yaml.safe_dump(app))
    output = tmp / "out-kill"
    command = [sys.executable, "-m", "serve_app.bulk", "--input", str(tmp / "corpus-kill"), "--output", str(output),
               "--config", str(tmp / "app.yaml"), "--render-num-cpus", "0.25", "--recognize-batch", "64",
               "--shard-size", "8", "--progress-every-s", "120"]
    env = {**os.environ, "RAY_ADDRESS": ray.get_runtime_context().gcs_address}
    kill_after = random.Random(seed).randint(1, docs - 1)
    first = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    while first.poll() is None and len(committed_sources(output)) < kill_after:
        time.sleep(0.05)
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    at_kill = committed_sources(output)
    began = time.perf_counter()
    second = subprocess.run(command, env=env, capture_output=True, text=True, cwd=ROOT)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    summary = json.loads((output / "_SUMMARY.json").read_text())
    import pyarrow.parquet as pq

    sources = pq.read_table(output / "parquet", columns=["source"]).column("source").to_pylist()
    expected = sorted(str(p) for p in (tmp / "corpus-kill").iterdir())
    counts = Counter(sources)
    row = {"documents": docs, "kill_after_committed": kill_after, "seed": seed,
           "committed_at_kill": len(at_kill), "resubmitted_parsed": summary["documents"],
           "resubmitted_skipped": summary["skipped"], "resubmitted_s": round(time.perf_counter() - began, 1),
           "sigkill_lost": len(set(expected) - set(sources)),
           "sigkill_duplicated": sum(n - 1 for n in counts.values() if n > 1),
           "committed_redone": summary["documents"] - (docs - len(at_kill))}
    print(f"  SIGKILL after {len(at_kill)} of {docs} documents committed: resubmitted job parsed "
          f"{row['resubmitted_parsed']}, skipped {row['resubmitted_skipped']}; lost {row['sigkill_lost']}, "
          f"duplicated {row['sigkill_duplicated']}, committed but redone {row['committed_redone']}", flush=True)
    return row


def node_loss(tmp: Path, app: dict) -> dict:
    """A job on a two-node Ray cluster of its own (tests/ray_cluster.py, 127.0.0.1) whose second node
    is killed (SIGKILL to its raylet and every process under it) while it runs pipeline workers:
    Ray Data restarts their actors and retries their tasks on the head; the job must complete with
    every document once."""
    import psutil
    import pyarrow.parquet as pq
    import yaml

    from devtools.ray_cluster import LocalCluster

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

    corpus(tmp / "corpus-node", KILL_PAGES)
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


def long_run(pages: int, profile: str, seed: int | None) -> int:
    from serve_app.launch import init_local_ray

    seed = seed if seed is not None else random.SystemRandom().randrange(10**6)
    tmp = Path(tempfile.mkdtemp(prefix="bulk-long-"))
    app = simulated_app(profile)
    label = f"simulated {profile}"
    init_local_ray(log_to_driver=False)
    import ray

    print(f"{label}: bulk jobs of 1,000 and {pages:,} pages ({PAGES_PER_DOC}-page documents)", flush=True)
    try:  # the corpora and the jobs' outputs are removed at the end, whatever happens
        small, large = memory_at(tmp, 1000, app), memory_at(tmp, pages, app)
        kill = sigkill_and_resubmit(tmp, app, seed)
        ray.shutdown()
        cost = commit_cost(tmp)
        node = node_loss(tmp, app)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    def ratio(a: int, b: int) -> float:
        return round(b / a, 3) if a else float("nan")

    ratios = {"driver": ratio(small["driver_peak_mb"], large["driver_peak_mb"]),
              "workers_total": ratio(small["workers_peak_total_mb"], large["workers_peak_total_mb"]),
              **{name: ratio(mb, large["peak_mb_by_worker"][name])
                 for name, mb in small["peak_mb_by_worker"].items() if name in large["peak_mb_by_worker"]}}
    worst = max(ratios.values(), key=lambda r: abs(r - 1))
    report = {"label": label, "profile": profile, "machine_cpus": len(os.sched_getaffinity(0)),
              "pages_per_document": PAGES_PER_DOC, "settings": SETTINGS, "memory_1k": small, "memory_large": large,
              "memory_ratios_large_vs_1k": ratios, "memory_ratio_10k_vs_1k": worst,
              "memory_within_10pct": abs(worst - 1) <= 0.10, **kill, "commit_cost": cost, "worker_node_killed": node}
    print(f"\n{label}: peak memory at {large['pages']:,} pages over 1,000 pages (driver, all workers, each kind):")
    for name, r in ratios.items():
        print(f"  {name:<56}{r:>7.3f}")
    print(f"worst {worst} ({'within' if report['memory_within_10pct'] else 'outside'} ±10 %); "
          f"SIGKILL: lost {kill['sigkill_lost']}, duplicated {kill['sigkill_duplicated']}, committed but redone "
          f"{kill['committed_redone']}; commit {cost['commit_ms_per_document']} ms a document "
          f"(+{cost['compaction_ms_per_document']} ms compaction); worker node killed mid-job: job "
          f"{'completed' if node['completed'] else 'FAILED'}, lost {node['lost']}, duplicated {node['duplicated']}")
    out = ROOT / "benchmarks" / "results" / "bulk_10k.json"
    out.write_text(json.dumps(report, indent=2))
    print(f"wrote {out}")
    return 0
