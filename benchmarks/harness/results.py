"""The one results writer: each scenario's JSON in ``benchmarks/results/``, stamped with the commit,
the machine and the label its figures carry ("simulated rtx5090", "cpu", …)."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results"


def machine() -> dict:
    """The CPU model, the CPUs this process may use and the memory of the machine it ran on."""
    try:
        model = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                     if line.startswith("model name"))
    except (OSError, StopIteration):
        model = platform.processor() or "unknown"
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return {"cpu_model": model, "cpus": len(os.sched_getaffinity(0)), "memory_gib": round(memory / 2**30, 1)}


def commit() -> str:
    """The commit the run measured (``+dirty`` with uncommitted changes outside ``results/``, whose
    files earlier runs of the same session rewrite)."""
    def git(*args):
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()

    head = git("rev-parse", "--short=12", "HEAD") or "unknown"
    return head + ("+dirty" if git("status", "--porcelain", "--untracked-files=no", "--", ".", ":!benchmarks/results") else "")


def write(name: str, report: dict, label: str) -> Path:
    """``benchmarks/results/<name>.json``: the stamp, then the scenario's report."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{name}.json"
    stamp = {"benchmark": name, "label": label, "commit": commit(), "machine": machine(),
             "written_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    out.write_text(json.dumps({**stamp, **report}, indent=2, ensure_ascii=False, default=str) + "\n")
    print(f"wrote {out.relative_to(ROOT)}", flush=True)
    return out
