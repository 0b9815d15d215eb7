"""How the offline CPU default (``configs/cpu.yaml``: PP-Layout CDLA + PP-OCRv6) scales with cores.

For each core count the Serve application runs in a child process pinned to that many cores
(``taskset``), and 8 HTTP clients on 127.0.0.1 send two corpora from
``benchmarks/quality.py``: born-digital pages (text layer, layout-bound) and scans (OCR-bound).
Each count runs twice: ``cpu_workers`` from the machine (the default: one single-threaded ONNX
session per core in the layout and recognizer stages) and ``cpu_workers: 1`` (one session per
stage, as before).

    .venv/bin/python benchmarks/cpu_scaling.py [--cores 1 2] [--pages 16]

Prints a table and writes ``benchmarks/results/cpu_scaling.json``.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "benchmarks")]

CLIENTS = 8
PORT = 8097


def corpora(pages: int) -> dict[str, list[bytes]]:
    import quality

    digital, scans = [], []
    for seed in range(1, pages + 1):
        make = (quality.one_column, quality.two_columns, quality.table_page, quality.formula_page)[seed % 4]
        digital.append(make(seed)[0].tobytes())
        scans.append(quality.scanned((quality.one_column, quality.two_columns)[seed % 2](seed)[0]).tobytes())
    return {"born_digital": digital, "scans": scans}


def app_args(workers: int | None) -> dict:
    import yaml

    spec = yaml.safe_load((ROOT / "configs" / "cpu.yaml").read_text())
    args = spec["applications"][0]["args"]
    if workers:
        for stage in ("layout", "recognizer"):
            args[stage] = {**args.get(stage, {}), "cpu_workers": workers}
    return args


def post_all(url: str, docs: list[bytes]) -> tuple[float, int]:
    import httpx

    def one(data: bytes) -> int:
        body = {"file": base64.b64encode(data).decode(), "fileType": 0, "visualize": False}
        with httpx.Client(base_url=url, timeout=900) as client:
            return client.post("/layout-parsing", json=body).status_code

    start = time.perf_counter()
    with ThreadPoolExecutor(CLIENTS) as pool:
        codes = list(pool.map(one, docs))
    return time.perf_counter() - start, sum(c != 200 for c in codes)


def child(cores: int, workers: int | None, pages: int) -> dict:
    from serve_app.launch import init_local_ray

    # Ray's CPUs only place actors: configs/cpu.yaml reserves 1.75 of them, so Ray is told at least
    # 2; what the processes can actually use is the taskset mask.
    init_local_ray(num_cpus=max(cores, 2), log_to_driver=False)
    import ray
    from ray import serve

    from serve_app.app import build_app

    serve.start(http_options={"host": "127.0.0.1", "port": PORT})
    serve.run(build_app(app_args(workers)), name="cpu-scaling")
    url = f"http://127.0.0.1:{PORT}"
    docs = corpora(pages)
    post_all(url, docs["born_digital"][:CLIENTS] + docs["scans"][:2])  # warm-up: every replica, every session
    row: dict = {"cores": cores, "cpu_workers": workers or "auto"}
    for kind, batch in docs.items():
        seconds, errors = post_all(url, batch)
        row[kind] = {"pages": len(batch), "seconds": round(seconds, 2), "pages_per_s": round(len(batch) / seconds, 3),
                     "errors": errors}
    serve.shutdown()
    ray.shutdown()
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cores", type=int, nargs="+", help="core counts (default 1, 2, 4, … up to the machine's)")
    parser.add_argument("--pages", type=int, default=16, help="pages per corpus")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--workers", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "cpu_scaling.json"))
    args = parser.parse_args(argv)
    if args.child:
        print("RESULT " + json.dumps(child(args.child, args.workers, args.pages)), flush=True)
        return 0
    available = sorted(os.sched_getaffinity(0))
    counts = args.cores or [n for n in (1, 2, 4, 8, 16, 32) if n <= len(available)]
    rows = []
    for cores in counts:
        for workers in (None, 1):
            pinned = ",".join(str(c) for c in available[:cores])
            cmd = ["taskset", "-c", pinned, sys.executable, __file__, "--child", str(cores), "--pages", str(args.pages)]
            cmd += ["--workers", str(workers)] if workers else []
            out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "RAY_AUTH_MODE": "disabled"})
            lines = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
            if out.returncode or not lines:
                sys.stderr.write(out.stdout[-3000:] + out.stderr[-3000:])
                raise SystemExit(f"the run on {cores} core(s) failed (exit {out.returncode})")
            rows.append(json.loads(lines[-1][len("RESULT "):]))
            print(f"{cores} core(s), cpu_workers {rows[-1]['cpu_workers']}: "
                  + ", ".join(f"{k} {rows[-1][k]['pages_per_s']:.3f} pages/s" for k in ("born_digital", "scans")),
                  flush=True)
    base = {k: next(r[k]["pages_per_s"] for r in rows if r["cores"] == counts[0] and r["cpu_workers"] == "auto")
            for k in ("born_digital", "scans")}
    for row in rows:
        for kind in base:
            row[kind]["speedup_vs_first"] = round(row[kind]["pages_per_s"] / base[kind], 2)
    print(f"\n{'cores':>5} {'cpu_workers':>11} {'born-digital pages/s':>21} {'×':>5} {'scans pages/s':>14} {'×':>5}")
    for r in rows:
        d, s = r["born_digital"], r["scans"]
        print(f"{r['cores']:>5} {r['cpu_workers']:>11} {d['pages_per_s']:>21.3f} {d['speedup_vs_first']:>5.2f} "
              f"{s['pages_per_s']:>14.3f} {s['speedup_vs_first']:>5.2f}")
    report = {"config": "configs/cpu.yaml (offline CPU default)", "clients": CLIENTS, "machine_cpus": len(available),
              "cpu_model": _cpu_model(), "runs": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")
    return 0


def _cpu_model() -> str:
    try:
        return next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("model name"))
    except (OSError, StopIteration):
        return "unknown"


if __name__ == "__main__":
    sys.exit(main())
