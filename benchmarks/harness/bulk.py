"""A bulk job run from this process (``serve_app.bulk.run`` on this process's Ray), with the peak
memory of the driver and of every Ray worker sampled the whole time."""

from __future__ import annotations

import json
import time
from pathlib import Path

from benchmarks.harness.memory import PeakMemory

#: A bulk run's defaults here: small shards and batches for small corpora.
SETTINGS = {"render_num_cpus": 0.5, "recognize_batch": 32, "shard_size": 16, "progress_every_s": 30}


def run_bulk(input_dir: Path, output: Path, app: dict, **settings) -> tuple[float, int, PeakMemory]:
    """(pages/s with start-up, pages, peak memory) of one job that must parse every document OK."""
    from serve_app.bulk import BulkConfig, run

    config = BulkConfig(input=str(input_dir), output=str(output), app=app, **{**SETTINGS, **settings})
    with PeakMemory() as memory:
        start = time.perf_counter()
        code = run(config)
        wall = time.perf_counter() - start
    summary = json.loads((output / "_SUMMARY.json").read_text())
    assert code == 0 and summary["by_status"] == {"ok": summary["documents"]}, summary
    return summary["pages"] / wall, summary["pages"], memory


def steady_rate(output: Path) -> float:
    """Pages/s between the first and the last finished document (start-up left out)."""
    from datetime import datetime

    import pyarrow.parquet as pq

    rows = sorted(pq.read_table(output / "parquet", columns=["finished_at", "page_count"]).to_pylist(),
                  key=lambda r: r["finished_at"])
    span = datetime.fromisoformat(rows[-1]["finished_at"]) - datetime.fromisoformat(rows[0]["finished_at"])
    return sum(r["page_count"] for r in rows[1:]) / max(span.total_seconds(), 1e-9)


def memory_row(pages: int, rate: float, memory: PeakMemory) -> dict:
    """A memory run's figures in MB."""
    return {"pages": pages, "pages_per_s": round(rate, 2), "driver_peak_mb": memory.driver >> 20,
            "workers_peak_total_mb": memory.workers >> 20, "object_store_peak_mb": memory.object_store >> 20,
            "largest_worker_peak_mb": memory.largest >> 20, "largest_worker": memory.largest_name,
            "peak_mb_by_worker": {k: v >> 20 for k, v in memory.by_name.items()}}
