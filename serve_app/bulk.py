"""Bulk corpora as one Ray job: every document parsed once, resumable, Parquet out.

    ray job submit --address http://HEAD:8265 -- \\
        python -m serve_app.bulk --input s3://bucket/pdfs/ --output s3://bucket/parsed/ --config app.yaml

Input: a directory, a glob (``dir/**/*.pdf``), a manifest (``.txt`` lines, ``.jsonl`` with
``path``, ``.parquet`` with a ``path`` column; paths or http(s) URLs), local or any filesystem
pyarrow reads (s3://, gs://). Ray Data streams the documents through an actor pool of document
workers (renderer + layout + recognition engine per worker, or a running Serve application with
``--serve-url``). The driver writes Parquet shards atomically as documents complete; a
re-submitted job skips documents already written for the same source and config fingerprint.
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import json
import logging
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any, Optional

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field

from serve_app.bulk_worker import COLUMNS, DocumentWorker
from serve_app.bulk_worker import filesystem as _fs

log = logging.getLogger("serve_app.bulk")
SUFFIXES = {".pdf", ".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp"}
SCHEMA = pa.schema([
    ("doc_id", pa.string()), ("source", pa.string()), ("fingerprint", pa.string()), ("status", pa.string()),
    ("error_kind", pa.string()), ("error", pa.string()), ("page_count", pa.int32()), ("pages_ok", pa.int32()),
    ("markdown", pa.list_(pa.string())), ("pruned_result", pa.list_(pa.string())),
    ("page_status", pa.list_(pa.string())), ("page_errors", pa.list_(pa.string())),
    ("seconds", pa.float64()), ("finished_at", pa.string()),
])


class BulkConfig(BaseModel):
    """One bulk run. Every field is also a command-line flag."""

    model_config = ConfigDict(extra="forbid")

    input: str = Field(..., description="Directory, glob, manifest (.txt/.jsonl/.parquet) or URI.")
    output: str = Field(..., description="Output directory or URI (Parquet shards, _SUMMARY.json).")
    app: dict[str, Any] = Field(default_factory=dict, description="AppConfig of the stages (renderer/layout/recognizer).")
    serve_url: Optional[str] = Field(None, description="Send documents to a running Serve application instead.")
    workers: int = Field(1, ge=1, description="Document workers (actor pool size).")
    worker_num_cpus: float = Field(1.0, gt=0)
    worker_num_gpus: float = Field(0.0, ge=0)
    shard_size: int = Field(8, ge=1, description="Documents per output shard.")
    flush_every_s: float = Field(30.0, gt=0, description="Write a shard at least this often.")
    page_retries: int = Field(2, ge=0, description="Retries of a failed page (transient errors).")
    retry_backoff_s: list[float] = Field(default_factory=lambda: [1.0, 4.0], description="Waits between retries.")
    max_page_error_rate: float = Field(0.5, ge=0, le=1, description="A document with more failed pages fails.")
    max_doc_error_rate: float = Field(0.25, ge=0, le=1, description="The job fails (exit 1) above this rate.")
    progress_every_s: float = Field(10.0, gt=0, description="Summary line interval.")
    markdown_files: bool = Field(False, description="Also write <doc_id>.md files.")

    def fingerprint(self) -> str:
        """What makes outputs comparable: the stage configuration (not paths or worker counts)."""
        relevant = json.dumps({"app": self.app, "serve_url": self.serve_url}, sort_keys=True)
        return hashlib.sha256(relevant.encode()).hexdigest()[:16]


def list_inputs(spec: str) -> list[str]:
    """Sources in a stable order: URIs or absolute local paths, or http(s) URLs from manifests."""
    fs, path = _fs(spec)
    prefix = spec.split("://")[0] + "://" if "://" in spec else ""
    if any(ch in spec for ch in "*?["):
        base = path.split("*")[0].rsplit("/", 1)[0]
        files = fs.get_file_info(pafs.FileSelector(base, recursive=True))
        return sorted(prefix + f.path for f in files if f.is_file and fnmatch.fnmatch(f.path, path))
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.Directory:
        files = fs.get_file_info(pafs.FileSelector(path, recursive=True))
        return sorted(prefix + f.path for f in files if f.is_file and Path(f.path).suffix.lower() in SUFFIXES)
    if info.type != pafs.FileType.File:
        raise SystemExit(f"input {spec!r} does not exist; pass a directory, a glob or a manifest file")
    return _manifest(fs, path)


def _manifest(fs, path: str) -> list[str]:
    if path.endswith(".parquet"):
        return [str(p) for p in pq.read_table(path, filesystem=fs, columns=["path"]).column("path").to_pylist()]
    with fs.open_input_stream(path) as stream:
        lines = [line.strip() for line in stream.read().decode().splitlines() if line.strip()]
    if path.endswith(".jsonl"):
        return [json.loads(line)["path"] for line in lines]
    return lines


def completed(output: str, fingerprint: str) -> set[str]:
    """Sources already written by an earlier run with the same fingerprint."""
    fs, path = _fs(output)
    if fs.get_file_info(path).type != pafs.FileType.Directory:
        return set()
    parts = [f.path for f in fs.get_file_info(pafs.FileSelector(path)) if f.path.endswith(".parquet")]
    done: set[str] = set()
    for part in parts:
        table = pq.read_table(part, filesystem=fs, columns=["source", "fingerprint"])
        done.update(s for s, f in zip(table.column("source").to_pylist(), table.column("fingerprint").to_pylist())
                    if f == fingerprint)
    return done


def write_shard(output: str, rows: list[dict], markdown_files: bool) -> str:
    """Atomically: write a temporary file, then move it into place."""
    fs, path = _fs(output)
    fs.create_dir(path, recursive=True)
    name = f"part-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}.parquet"
    tmp = f"{path}/.{name}.tmp"
    pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMA), tmp, filesystem=fs)
    fs.move(tmp, f"{path}/{name}")
    if markdown_files:
        for row in rows:
            with fs.open_output_stream(f"{path}/markdown/{row['doc_id']}.md") as out:
                out.write("\n\n".join(row["markdown"] or []).encode())
    return name


class Progress:
    """Counts, a summary line every N seconds, and the final summary."""

    def __init__(self, total: int, skipped: int, every_s: float):
        self.total, self.skipped, self.every_s = total, skipped, every_s
        self.start = self.last = time.monotonic()
        self.docs: Counter = Counter()
        self.pages = 0
        self.failures: Counter = Counter()

    def add(self, row: dict) -> None:
        self.docs[row["status"]] += 1
        self.pages += row["page_count"] or 0
        if row["error_kind"]:
            self.failures[row["error_kind"]] += 1
        for error in row["page_errors"] or []:
            if error:
                self.failures[error.split(":", 1)[0]] += 1
        if time.monotonic() - self.last >= self.every_s:
            self.last = time.monotonic()
            print(self.line(), flush=True)

    def line(self) -> str:
        done, elapsed = sum(self.docs.values()), time.monotonic() - self.start
        return (f"[bulk] {done}/{self.total} documents ({self.skipped} skipped as done), {self.pages} pages, "
                f"{self.pages / max(elapsed, 1e-9):.2f} pages/s, status {dict(self.docs)}, failures {dict(self.failures)}")

    def summary(self) -> dict:
        elapsed = time.monotonic() - self.start
        return {"documents": sum(self.docs.values()), "skipped": self.skipped, "by_status": dict(self.docs),
                "pages": self.pages, "failures_by_kind": dict(self.failures), "seconds": round(elapsed, 2),
                "pages_per_s": round(self.pages / max(elapsed, 1e-9), 3)}


def run(config: BulkConfig) -> int:
    import ray

    fingerprint = config.fingerprint()
    sources = list_inputs(config.input)
    done = completed(config.output, fingerprint)
    pending = [s for s in sources if s not in done]
    progress = Progress(len(pending), len(sources) - len(pending), config.progress_every_s)
    print(f"[bulk] {len(sources)} documents, {len(pending)} to parse, fingerprint {fingerprint}", flush=True)
    if pending:
        _stream(ray, config, fingerprint, pending, progress)
    summary = progress.summary()
    failed = summary["by_status"].get("failed", 0)
    summary["job_status"] = "failed" if summary["documents"] and failed / summary["documents"] > config.max_doc_error_rate else "ok"
    fs, path = _fs(config.output)
    fs.create_dir(path, recursive=True)
    with fs.open_output_stream(f"{path}/_SUMMARY.json") as out:
        out.write(json.dumps(summary, indent=2).encode())
    print("[bulk] summary " + json.dumps(summary), flush=True)
    return 0 if summary["job_status"] == "ok" else 1


def _stream(ray, config: BulkConfig, fingerprint: str, pending: list[str], progress: Progress) -> None:
    ds = ray.data.from_items([{"source": s} for s in pending], override_num_blocks=len(pending))
    ds = ds.map_batches(
        DocumentWorker, batch_size=1, concurrency=config.workers, num_cpus=config.worker_num_cpus,
        num_gpus=config.worker_num_gpus or None,
        fn_constructor_kwargs={"app": config.app, "serve_url": config.serve_url, "fingerprint": fingerprint,
                               "retries": config.page_retries, "backoff": config.retry_backoff_s,
                               "max_page_error_rate": config.max_page_error_rate})
    buffer: list[dict] = []
    last_flush = time.monotonic()
    for batch in ds.iter_batches(batch_size=1, batch_format="pandas", prefetch_batches=0):
        for row in batch.to_dict("records"):
            row = {k: _plain(row[k]) for k in COLUMNS}
            buffer.append(row)
            progress.add(row)
        if len(buffer) >= config.shard_size or time.monotonic() - last_flush >= config.flush_every_s:
            write_shard(config.output, buffer, config.markdown_files)
            buffer, last_flush = [], time.monotonic()
    if buffer:
        write_shard(config.output, buffer, config.markdown_files)


def _plain(value):
    """numpy arrays (Ray Data's list columns) → lists."""
    return value.tolist() if hasattr(value, "tolist") and not isinstance(value, (str, bytes)) else value


def parse_args(argv=None) -> BulkConfig:
    parser = argparse.ArgumentParser(prog="python -m serve_app.bulk", description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--config", help="AppConfig YAML for the stages (or a Serve config file)")
    parser.add_argument("--serve-url")
    for name, field in BulkConfig.model_fields.items():
        if name in ("input", "output", "app", "serve_url", "retry_backoff_s"):
            continue
        flag = "--" + name.replace("_", "-")
        if field.annotation is bool:
            parser.add_argument(flag, action="store_true", help=field.description)
        else:
            parser.add_argument(flag, type=type(field.default), default=field.default, help=field.description)
    args = vars(parser.parse_args(argv))
    app = _app_args(args.pop("config"))
    return BulkConfig(app=app, **{k: v for k, v in args.items() if v is not None})


def _app_args(path: Optional[str]) -> dict:
    if not path:
        return {}
    import yaml

    data = yaml.safe_load(Path(path).read_text()) or {}
    if "applications" in data:  # a Serve config file: take the application's args
        return data["applications"][0].get("args") or {}
    return data


def main(argv=None) -> int:
    import os

    import ray

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    config = parse_args(argv)
    if os.environ.get("RAY_ADDRESS"):  # inside `ray job submit`, or pointed at a cluster
        ray.init(log_to_driver=False)
    else:  # a local run starts its own single-node cluster on loopback
        ray.init(_node_ip_address="127.0.0.1", include_dashboard=False, log_to_driver=False)
    return run(config)


if __name__ == "__main__":
    sys.exit(main())
