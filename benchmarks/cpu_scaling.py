"""How the offline CPU default (``configs/cpu.yaml``: PP-Layout CDLA + PP-OCRv6) scales with cores.

For each core count the Serve application runs in a child process pinned to that many cores
(``taskset``), and 8 HTTP clients on 127.0.0.1 send two corpora from
the quality corpus (``harness.corpora``): born-digital pages (text layer, layout-bound) and scans (OCR-bound).
Each count runs twice: ``cpu_workers`` from the machine (the default: one single-threaded ONNX
session per core in the layout and recognizer stages) and ``cpu_workers: 1`` (one session per
stage, as before).

    .venv/bin/python -m benchmarks.cpu_scaling [--cores 1 2] [--pages 16]

Prints a table and writes ``benchmarks/results/cpu_scaling.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

from benchmarks.harness import results
from benchmarks.harness.apps import app_config, label
from benchmarks.harness.corpora import formula_page, one_column, scanned, table_page, two_columns
from benchmarks.harness.load import through_http
from benchmarks.harness.results import ROOT
from benchmarks.harness.server import LocalServe

CLIENTS = 8
PORT = 8097


def corpora(pages: int) -> dict[str, list[bytes]]:
    digital, scans = [], []
    for seed in range(1, pages + 1):
        make = (one_column, two_columns, table_page, formula_page)[seed % 4]
        digital.append(make(seed)[0].tobytes())
        scans.append(scanned((one_column, two_columns)[seed % 2](seed)[0]).tobytes())
    return {"born_digital": digital, "scans": scans}


def child(cores: int, workers: int | None, pages: int) -> dict:
    # Ray's CPUs only place actors: configs/cpu.yaml reserves 1.75 of them, so Ray is told at least
    # 2; what the processes can actually use is the taskset mask.
    config = app_config("lite", cpu_workers=workers, name="cpu-scaling")
    docs = corpora(pages)
    row: dict = {"cores": cores, "cpu_workers": workers or "auto"}
    with LocalServe(config, PORT, num_cpus=max(cores, 2)) as server:
        through_http(server.url, docs["born_digital"][:CLIENTS] + docs["scans"][:2], CLIENTS, 900,
                     visualize=False)  # warm-up: every replica, every session
        for kind, batch in docs.items():
            run = through_http(server.url, batch, CLIENTS, 900, visualize=False)
            row[kind] = {"pages": len(batch), "seconds": round(run["wall_s"], 2),
                         "pages_per_s": round(run["documents_per_s"], 3), "errors": run["errors"]}
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cores", type=int, nargs="+", help="core counts (default 1, 2, 4, … up to the machine's)")
    parser.add_argument("--pages", type=int, default=16, help="pages per corpus")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--workers", type=int, help=argparse.SUPPRESS)

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
            cmd = ["taskset", "-c", pinned, sys.executable, "-m", "benchmarks.cpu_scaling", "--child", str(cores),
                   "--pages", str(args.pages)]
            cmd += ["--workers", str(workers)] if workers else []
            out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT,
                                 env={**os.environ, "RAY_AUTH_MODE": "disabled"})
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
    report = {"config": "configs/cpu.yaml (offline CPU default)", "clients": CLIENTS, "runs": rows}
    results.write("cpu_scaling", report, label("lite"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
