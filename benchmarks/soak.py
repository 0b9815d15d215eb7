"""Soak: steady load on the Serve application (simulated engines, 127.0.0.1) for ``--minutes``,
the resident memory (RSS) of every Ray process sampled every ``--sample-s`` seconds. Reports each
process's growth from the end of the warm-up to the end, and the total's; the goal is ≤ 5 %.

    .venv/bin/python benchmarks/soak.py [--minutes 30] [--clients 8] [--profile rtx5090]

Writes benchmarks/results/soak.json (``rss_growth_pct``: all Ray processes together, after
warm-up). Figures are "simulated <profile>". Bounded: it stops by itself after ``--minutes``.
The test suite runs a 2-minute version against its own Ray (``soak()``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "benchmarks")]

from chaos import Load  # noqa: E402
from gpu_regime import ray_title  # noqa: E402


def ray_processes() -> dict[int, str]:
    """pid → name of every Ray process on this machine: workers by their title (``ray::ServeReplica:
    <app>:<deployment>``, ``ray::ProxyActor``, …; ``ray::IDLE`` workers left out, they come and go),
    and the raylet, GCS and agents."""
    import psutil

    out = {}
    for proc in psutil.process_iter(["cmdline"]):
        try:
            title = (proc.info["cmdline"] or [""])[0]
        except (psutil.Error, IndexError):
            continue
        if title.startswith("ray::") and not title.startswith("ray::IDLE"):
            out[proc.pid] = ray_title(title)
        elif any(k in title for k in ("raylet", "gcs_server", "dashboard", "log_monitor", "runtime_env")):
            out[proc.pid] = Path(title).name.split(" ")[0]
    return out


def rss(pids: dict[int, str]) -> dict[int, int]:
    import psutil

    out = {}
    for pid in pids:
        try:
            out[pid] = psutil.Process(pid).memory_info().rss
        except psutil.Error:
            continue
    return out


def soak(url: str, minutes: float, sample_s: float, clients: int, warmup_s: float,
         processes=ray_processes) -> dict:
    """Load ``url`` for ``minutes``; RSS samples of ``processes()`` every ``sample_s``; growth of the
    processes alive from the first sample after ``warmup_s`` to the last."""
    load = Load(url, clients, deadline_s=600, client_timeout_s=660, limit=10**9).start()
    start, samples = time.monotonic(), []
    stop = threading.Event()
    try:
        while True:
            elapsed = time.monotonic() - start
            names = processes()
            samples.append({"t": round(elapsed, 1), "answers": load.done(), "names": names, "rss": rss(names)})
            total = sum(samples[-1]["rss"].values()) >> 20
            print(f"  {elapsed / 60:5.1f} min: {load.done()} documents answered, Ray processes {total} MB RSS", flush=True)
            if elapsed >= minutes * 60 or stop.wait(min(sample_s, max(minutes * 60 - elapsed, 0.1))):
                break
    finally:
        load.stop()
    base = next((s for s in samples if s["t"] >= warmup_s), samples[0])
    end = samples[-1]
    alive = [pid for pid in base["rss"] if pid in end["rss"]]
    per_name: dict[str, list[int]] = {}
    for pid in alive:
        name = end["names"][pid]
        before, after = per_name.get(name, [0, 0])
        per_name[name] = [before + base["rss"][pid], after + end["rss"][pid]]
    before, after = sum(base["rss"][p] for p in alive), sum(end["rss"][p] for p in alive)
    kinds = Counter(o["kind"] for o in load.outcomes)
    pages = sum(o["pages"] for o in load.outcomes if o["kind"] == "ok")
    return {"minutes": minutes, "clients": clients, "warmup_s": warmup_s, "sample_s": sample_s,
            "documents": len(load.outcomes), "pages_ok": pages, "by_kind": dict(kinds),
            "rss_after_warmup_mb": before >> 20, "rss_end_mb": after >> 20,
            "rss_growth_pct": round(100 * (after - before) / max(before, 1), 2),
            "per_process": {name: {"after_warmup_mb": b >> 20, "end_mb": a >> 20,
                                   "growth_pct": round(100 * (a - b) / max(b, 1), 2)}
                            for name, (b, a) in sorted(per_name.items(), key=lambda kv: -kv[1][1])},
            "total_mb_over_time": [{"t_s": s["t"], "answers": s["answers"], "mb": sum(s["rss"].values()) >> 20}
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

    from chaos import app_config

    from serve_app.app import build_app, reserved_cpus
    from serve_app.config import load_config
    from serve_app.launch import init_local_ray

    config = app_config(args.profile, ingress_replicas=1)
    init_local_ray(log_to_driver=False, num_cpus=math.ceil(reserved_cpus(load_config(config))) + 1)
    import ray
    from ray import serve

    serve.start(http_options={"host": "127.0.0.1", "port": args.port})
    serve.run(build_app(config), name="chaos")
    try:
        report = soak(f"http://127.0.0.1:{args.port}", args.minutes, args.sample_s, args.clients, warmup)
    finally:
        serve.shutdown()
        ray.shutdown()
    report.update({"label": f"simulated {args.profile}", "profile": args.profile,
                   "machine_cpus": len(os.sched_getaffinity(0))})
    print(f"\nsimulated {args.profile}, {args.minutes:g} min, {args.clients} clients: {report['documents']} documents "
          f"({report['by_kind']}), {report['pages_ok']} pages")
    print(f"{'process':<44}{'after warm-up MB':>18}{'end MB':>9}{'growth':>9}")
    for name, row in report["per_process"].items():
        print(f"{name:<44}{row['after_warmup_mb']:>18}{row['end_mb']:>9}{row['growth_pct']:>8}%")
    print(f"all Ray processes: {report['rss_after_warmup_mb']} → {report['rss_end_mb']} MB, "
          f"{report['rss_growth_pct']} % after warm-up (goal ≤ 5 %)")
    out = ROOT / "benchmarks" / "results" / "soak.json"
    out.write_text(json.dumps(report, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
