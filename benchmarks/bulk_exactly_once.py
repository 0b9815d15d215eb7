"""Exactly-once under stops and kills, at random moments: bulk jobs submitted through the Ray Jobs
API on a two-node cluster of this benchmark's own (127.0.0.1, ``LocalCluster``; layout and
recognition actors on the second node), each stopped mid-way, then submitted again until done.

Two kinds of interruption, ``--runs`` of each (default 20):
- ``stop``: ``ray job stop`` (SIGTERM to the driver; Ray sends SIGKILL 3 s later if it is still alive);
- ``sigkill``: SIGKILL to the driver's pid (from the job's ``driver_info``).
The moment is random: once a random number of documents is committed, after a random wait of up to
``--jitter-s``. Per run it counts, over the finished output:
- ``duplicated``: rows beyond the first of a source (in Parquet, and in the JSONL twins);
- ``lost``: sources of the corpus with no row;
- ``reparsed``: documents committed before the interruption whose row was written again.
All three must be 0. Writes ``benchmarks/results/bulk_exactly_once.json``.

    .venv/bin/python -m benchmarks.bulk_exactly_once [--runs 20] [--documents 40] [--code DIR]

``--code DIR`` runs the jobs with another checkout's ``serve_app`` (e.g. a worktree of an older
commit, to measure it before a fix). Loopback only; bounded: ``--runs`` × 2 kinds × 2 jobs.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from benchmarks.harness import results
from benchmarks.harness.corpora import text_pdf
from benchmarks.harness.server import LocalCluster

APP_YAML = "layout: {num_gpus: 0.25, num_cpus: 0.25}\nrecognizer: {num_gpus: 0.5, num_cpus: 0.25}\n"
TERMINAL = ("STOPPED", "SUCCEEDED", "FAILED")


def corpus(root: Path, documents: int) -> list[str]:
    root.mkdir(parents=True)
    for i in range(documents):
        (root / f"doc{i:03d}.pdf").write_bytes(text_pdf(1 + i % 2, f"Document {i}, page {{n}}: words to read. "))
    return sorted(str(p) for p in root.iterdir())


class Jobs:
    def __init__(self, dashboard: str, code: str | None):
        from ray.job_submission import JobSubmissionClient

        self.client = JobSubmissionClient(dashboard)
        self.runtime_env = {"env_vars": {"PYTHONPATH": code}} if code else None

    def submit(self, corpus_dir: Path, output: Path, app_yaml: Path) -> str:
        entrypoint = (f"{sys.executable} -m serve_app.bulk --input {corpus_dir} --output {output} "
                      f"--config {app_yaml} --recognize-batch 2 --shard-size 2 "
                      "--flush-every-s 1 --progress-every-s 30 --markdown-files --jsonl")
        return self.client.submit_job(entrypoint=entrypoint, runtime_env=self.runtime_env)

    def status(self, job: str) -> str:
        return str(self.client.get_job_status(job).value)

    def wait(self, job: str, until=None, timeout: float = 900) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.status(job)
            if status in TERMINAL or (until and until()):
                return status
            time.sleep(0.1)
        self.client.stop_job(job)
        raise RuntimeError(f"job {job} still {self.status(job)} after {timeout} s")

    def driver_pid(self, job: str) -> int | None:
        info = self.client.get_job_info(job).driver_info
        return int(info.pid) if info else None


def committed(output: Path) -> dict[str, set[str]]:
    """source → finished_at of its rows, in shards and pending files (read while a driver writes)."""
    import pyarrow.parquet as pq

    rows: dict[str, set[str]] = {}
    for part in sorted((output / "parquet").glob("part-*.parquet")):
        try:
            table = pq.read_table(part, columns=["source", "finished_at"]).to_pylist()
        except (OSError, FileNotFoundError):
            continue
        for row in table:
            rows.setdefault(row["source"], set()).add(row["finished_at"])
    for pending in (output / "_pending").glob("*.json"):
        try:
            row = json.loads(pending.read_text())
        except (OSError, ValueError):
            continue  # compacted away while we read
        rows.setdefault(row["source"], set()).add(row["finished_at"])
    return rows


def one_run(jobs: Jobs, kind: str, corpus_dir: Path, sources: list[str], work: Path, app_yaml: Path,
            rng: random.Random, jitter_s: float) -> dict:
    import pyarrow.parquet as pq

    output = work / f"out-{kind}-{time.monotonic_ns()}"
    target = rng.randint(1, len(sources) - 2)
    first = jobs.submit(corpus_dir, output, app_yaml)
    jobs.wait(first, until=lambda: len(committed(output)) >= target)
    time.sleep(rng.uniform(0, jitter_s))
    if kind == "stop":
        jobs.client.stop_job(first)
    else:
        pid = jobs.driver_pid(first)
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, TypeError):
            pass  # it ended on its own meanwhile
    first_status = jobs.wait(first)
    at_stop = committed(output)
    second = jobs.submit(corpus_dir, output, app_yaml)
    second_status = jobs.wait(second)
    table = pq.read_table(output / "parquet", columns=["source", "finished_at"]).to_pylist()
    jsonl = [json.loads(line)["source"] for f in sorted((output / "jsonl").glob("*.jsonl")) for line in f.open()]
    counts, final = Counter(r["source"] for r in table), {r["source"]: r["finished_at"] for r in table}
    row = {"kind": kind, "committed_target": target, "committed_at_stop": len(at_stop),
           "first_status": first_status, "second_status": second_status,
           "duplicated": sum(n - 1 for n in counts.values() if n > 1)
           + sum(n - 1 for n in Counter(jsonl).values() if n > 1),
           "lost": len(set(sources) - set(counts)) + len(set(sources) - set(jsonl)),
           "reparsed": sum(1 for s, ats in at_stop.items() if final.get(s) not in ats)}
    print(f"  {kind:7s} at {len(at_stop):2d}/{len(sources)} committed: first {first_status}, then {second_status}; "
          f"duplicated {row['duplicated']}, lost {row['lost']}, reparsed {row['reparsed']}", flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="runs of each kind")
    parser.add_argument("--documents", type=int, default=40)
    parser.add_argument("--jitter-s", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--code", help="checkout whose serve_app the jobs run (default: this one)")
    parser.add_argument("--out", default="bulk_exactly_once", help="name of the results file")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stopped: the cluster and files go all the same
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    rng, began = random.Random(args.seed), time.monotonic()
    with tempfile.TemporaryDirectory(prefix="exactly-once-") as tmp:
        work = Path(tmp)
        sources = corpus(work / "corpus", args.documents)
        (work / "app.yaml").write_text(APP_YAML)
        cluster = LocalCluster().start(head_cpus=4, node_cpus=2, node_gpus=2)
        try:
            jobs = Jobs(cluster.dashboard, args.code)
            rows = [one_run(jobs, kind, work / "corpus", sources, work, work / "app.yaml", rng, args.jitter_s)
                    for _ in range(args.runs) for kind in ("stop", "sigkill")]
        finally:
            cluster.stop()
    result = {"runs": dict(Counter(r["kind"] for r in rows)), "documents": args.documents,
              "duplicated": sum(r["duplicated"] for r in rows), "lost": sum(r["lost"] for r in rows),
              "reparsed": sum(r["reparsed"] for r in rows),
              "second_job_not_succeeded": sum(r["second_status"] != "SUCCEEDED" for r in rows),
              # runs whose interruption came before the corpus was done (the others test only the resubmission)
              "interrupted_mid_way": dict(Counter(r["kind"] for r in rows if r["committed_at_stop"] < args.documents)),
              "code": args.code or "this checkout", "seed": args.seed, "jitter_s": args.jitter_s,
              "seconds": round(time.monotonic() - began, 1), "per_run": rows}
    print(f"{sum(result['runs'].values())} runs: duplicated {result['duplicated']}, lost {result['lost']}, "
          f"reparsed {result['reparsed']}", flush=True)
    results.write(args.out, result, "cpu (offline models), two loopback nodes")


if __name__ == "__main__":
    main()
