"""Where bulk documents come from and where their rows go: local paths or any filesystem pyarrow
reads (s3://, gs://), http(s) URLs in manifests, Parquet shards written atomically."""

from __future__ import annotations

import fnmatch
import json
import time
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

SUFFIXES = {".pdf", ".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp"}
SCHEMA = pa.schema([
    ("doc_id", pa.string()), ("source", pa.string()), ("fingerprint", pa.string()), ("status", pa.string()),
    ("error_kind", pa.string()), ("error", pa.string()), ("page_count", pa.int32()), ("pages_ok", pa.int32()),
    ("markdown", pa.list_(pa.string())), ("pruned_result", pa.list_(pa.string())),
    ("page_status", pa.list_(pa.string())), ("page_errors", pa.list_(pa.string())),
    ("page_error_kinds", pa.list_(pa.string())),
    ("seconds", pa.float64()), ("finished_at", pa.string()),
])


def filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    """(pyarrow filesystem, path) for a URI (s3://, gs://, ...) or a local path (made absolute)."""
    if "://" in uri:
        return pafs.FileSystem.from_uri(uri)
    return pafs.LocalFileSystem(), str(Path(uri).resolve())


def read_source(source: str) -> bytes:
    if source.startswith(("http://", "https://")):
        import httpx

        response = httpx.get(source, timeout=60, follow_redirects=True)
        response.raise_for_status()
        return response.content
    fs, path = filesystem(source)
    with fs.open_input_stream(path) as stream:
        return stream.read()


def list_inputs(spec: str) -> list[str]:
    """Sources in a stable order: URIs or absolute local paths, or http(s) URLs from manifests."""
    fs, path = filesystem(spec)
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


def _manifest(fs: pafs.FileSystem, path: str) -> list[str]:
    if path.endswith(".parquet"):
        return [str(p) for p in pq.read_table(path, filesystem=fs, columns=["path"]).column("path").to_pylist()]
    with fs.open_input_stream(path) as stream:
        lines = [line.strip() for line in stream.read().decode().splitlines() if line.strip()]
    if path.endswith(".jsonl"):
        return [json.loads(line)["path"] for line in lines]
    return lines


def completed(output: str, fingerprint: str, retry_failed: bool = False) -> dict[str, str]:
    """source → content hash of its newest row written by a run with the same fingerprint
    (failed documents left out with ``retry_failed``)."""
    fs, path = filesystem(output)
    path += "/parquet"
    if fs.get_file_info(path).type != pafs.FileType.Directory:
        return {}
    parts = sorted(f.path for f in fs.get_file_info(pafs.FileSelector(path)) if f.path.endswith(".parquet"))
    newest: dict[str, tuple[str, str, str]] = {}
    for part in parts:
        table = pq.read_table(part, filesystem=fs, columns=["source", "doc_id", "fingerprint", "status", "finished_at"])
        for source, doc_id, fp, status, at in zip(*(table.column(c).to_pylist() for c in table.column_names)):
            if fp == fingerprint and (source not in newest or at >= newest[source][2]):
                newest[source] = (doc_id, status, at)
    return {s: d for s, (d, status, _) in newest.items() if not (retry_failed and status == "failed")}


def write_shard(output: str, rows: list[dict], markdown_files: bool = False, jsonl: bool = False) -> str:
    """Write one shard atomically (temporary name, then a move) as ``parquet/part-….parquet``, and
    optionally ``jsonl/part-….jsonl`` and ``markdown/<doc_id>.md``. The Parquet file is moved last:
    a document counts as done once it is in a Parquet shard."""
    fs, path = filesystem(output)
    for sub in ("parquet", "jsonl" if jsonl else None, "markdown" if markdown_files else None):
        if sub:
            fs.create_dir(f"{path}/{sub}", recursive=True)
    name = f"part-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"
    if markdown_files:
        for row in rows:
            if row["doc_id"] and row["status"] != "failed":
                _atomic(fs, f"{path}/markdown/{row['doc_id']}.md", "\n\n".join(row["markdown"] or []).encode())
    if jsonl:
        _atomic(fs, f"{path}/jsonl/{name}.jsonl",
                "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode())
    tmp = f"{path}/parquet/.{name}.parquet.tmp"
    pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMA), tmp, filesystem=fs)
    fs.move(tmp, f"{path}/parquet/{name}.parquet")
    return f"{name}.parquet"


def _atomic(fs: pafs.FileSystem, target: str, data: bytes) -> None:
    tmp = target.rsplit("/", 1)
    tmp = f"{tmp[0]}/.{tmp[1]}.tmp"
    with fs.open_output_stream(tmp) as out:
        out.write(data)
    fs.move(tmp, target)


def write_summary(output: str, summary: dict) -> None:
    fs, path = filesystem(output)
    fs.create_dir(path, recursive=True)
    _atomic(fs, f"{path}/_SUMMARY.json", json.dumps(summary, indent=2).encode())
