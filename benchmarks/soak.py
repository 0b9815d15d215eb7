"""Soak: steady load on the Serve application (simulated engines, 127.0.0.1) for ``--minutes``,
the memory of every Ray process (PSS, the object store apart) sampled every ``--sample-s`` seconds. Reports each
process's growth from the end of the warm-up to the end, and the total's; the goal is ≤ 5 %.

    .venv/bin/python -m benchmarks.soak [--minutes 30] [--clients 8] [--profile rtx5090]

Writes benchmarks/results/soak.json (``pss_growth_pct``: all Ray processes together, after
warm-up). Figures are "simulated <profile>". Bounded: it stops by itself after ``--minutes``.
The test suite runs a 2-minute version against its own Ray (``soak()``).
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections import Counter

from benchmarks.harness import results
from benchmarks.harness.apps import app_config, label
from benchmarks.harness.load import Load
from benchmarks.harness.memory import pss_of
from benchmarks.harness.processes import ray_processes
from benchmarks.harness.server import LocalServe


def soak(url: str, minutes: float, sample_s: float, clients: int, warmup_s: float,
         processes=ray_processes) -> dict:
    """Load ``url`` for ``minutes``; memory (PSS, the object store apart) of ``processes()`` every
    ``sample_s``; growth of the processes alive from the first sample after ``warmup_s`` to the last."""
    load = Load(url, clients, deadline_s=600, client_timeout_s=660, limit=10**9).start()
    start, samples = time.monotonic(), []
    stop = threading.Event()
    try:
        while True:
            elapsed = time.monotonic() - start
            names = processes()
            samples.append({"t": round(elapsed, 1), "answers": load.done(), "names": names, "pss": pss_of(names)})
            total = sum(samples[-1]["pss"].values()) >> 20
            print(f"  {elapsed / 60:5.1f} min: {load.done()} documents answered, Ray processes {total} MB PSS", flush=True)
            if elapsed >= minutes * 60 or stop.wait(min(sample_s, max(minutes * 60 - elapsed, 0.1))):
                break
    finally:
        load.stop()
    base = next((s for s in samples if s["t"] >= warmup_s), samples[0])
    end = samples[-1]
    alive = [pid for pid in base["pss"] if pid in end["pss"]]
    per_name: dict[str, list[int]] = {}
    for pid in alive:
        name = end["names"][pid]
        before, after = per_name.get(name, [0, 0])
        per_name[name] = [before + base["pss"][pid], after + end["pss"][pid]]
    before, after = sum(base["pss"][p] for p in alive), sum(end["pss"][p] for p in alive)
    kinds = Counter(o["kind"] for o in load.outcomes)
    pages = sum(o["pages"] for o in load.outcomes if o["kind"] == "ok")
    return {"minutes": minutes, "clients": clients, "warmup_s": warmup_s, "sample_s": sample_s,
            "documents": len(load.outcomes), "pages_ok": pages, "by_kind": dict(kinds),
            "pss_after_warmup_mb": before >> 20, "pss_end_mb": after >> 20,
            "pss_growth_pct": round(100 * (after - before) / max(before, 1), 2),
            "per_process": {name: {"after_warmup_mb": b >> 20, "end_mb": a >> 20,
                                   "growth_pct": round(100 * (a - b) / max(b, 1), 2)}
                            for name, (b, a) in sorted(per_name.items(), key=lambda kv: -kv[1][1])},
            "total_mb_over_time": [{"t_s": s["t"], "answers": s["answers"], "mb": sum(s["pss"].values()) >> 20}
                                   for s in samples]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--sample-s", type=float, default=30)
    parser.add_argument("--warmup-s", type=float, default=None, help="Default: 3 samples, at most a fifth of the run")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--profile", default="rtx5090")
    parser.add_argument("--port", type=int, default=8098)
    args = parser.parse_args(argv)
    warmup = args.warmup_s if args.warmup_s is not None else min(3 * args.sample_s, args.minutes * 12)

    with LocalServe(app_config("simulated", profile=args.profile, ingress_replicas=1, name="soak"), args.port) as server:
        report = soak(server.url, args.minutes, args.sample_s, args.clients, warmup)
    report["profile"] = args.profile
    print(f"\nsimulated {args.profile}, {args.minutes:g} min, {args.clients} clients: {report['documents']} documents "
          f"({report['by_kind']}), {report['pages_ok']} pages")
    print(f"{'process':<44}{'after warm-up MB':>18}{'end MB':>9}{'growth':>9}")
    for name, row in report["per_process"].items():
        print(f"{name:<44}{row['after_warmup_mb']:>18}{row['end_mb']:>9}{row['growth_pct']:>8}%")
    print(f"all Ray processes: {report['pss_after_warmup_mb']} → {report['pss_end_mb']} MB PSS, "
          f"{report['pss_growth_pct']} % after warm-up (goal ≤ 5 %)")
    results.write("soak", report, label("simulated", args.profile))
    return 0


if __name__ == "__main__":
    sys.exit(main())
