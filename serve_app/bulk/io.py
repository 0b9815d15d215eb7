"""Where bulk documents come from and where their rows go: local paths or any filesystem pyarrow
reads (s3://, gs://), http(s) URLs in manifests; each finished document committed on its own, then
compacted into Parquet shards.

Output layout::

    <output>/_pending/<key>.json       one finished document, committed before it counts as done
    <output>/parquet/part-….parquet    shards compacted from those (then the pending files go)
    <output>/jsonl/part-….jsonl        the same rows, with --jsonl
    <output>/markdown/<doc_id>.md      with --markdown-files, at commit
    <output>/_SUMMARY.json

A driver killed at any moment leaves each finished document in a shard or a pending file (or in
both, when it died between writing a shard and deleting what it compacted); the next run's
:meth:`Output.recover` compacts the pending files a shard does not already hold, so nothing is lost
and nothing is written twice.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
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


class Output:
    """A bulk job's output directory (or URI): commits finished documents, compacts them into
    shards, recovers what a killed driver left, and answers which documents are done."""

    def __init__(self, uri: str, markdown_files: bool = False, jsonl: bool = False):
        self.fs, self.path = filesystem(uri)
        self.markdown_files, self.jsonl = markdown_files, jsonl
        self.pending = f"{self.path}/_pending"

    def commit(self, row: dict) -> None:
        """One finished document, durably (written, synced on a local disk, then renamed into
        place): from here on a killed driver does not parse it again."""
        self.fs.create_dir(self.pending, recursive=True)
        if self.markdown_files and row["doc_id"] and row["status"] != "failed":
            self.fs.create_dir(f"{self.path}/markdown", recursive=True)
            _atomic(self.fs, f"{self.path}/markdown/{row['doc_id']}.md", "\n\n".join(row["markdown"] or []).encode())
        _atomic(self.fs, self._pending_file(row), json.dumps(row, ensure_ascii=False).encode())

    def compact(self, rows: list[dict]) -> None:
        """Committed documents into one shard, then their pending files removed."""
        if not rows:
            return
        self.write_shard(rows)
        for row in rows:
            try:
                self.fs.delete_file(self._pending_file(row))
            except FileNotFoundError:
                pass

    def recover(self) -> int:
        """Compact what a killed driver committed but did not compact (pending files a shard
        already holds, by source and finish time, are only removed); returns the documents recovered."""
        pending = self._pending_rows()
        written = {(r["source"], r["finished_at"]) for r in self._shard_rows(["source", "finished_at"])}
        fresh = [r for r in pending.values() if (r["source"], r["finished_at"]) not in written]
        if fresh:
            self.write_shard(fresh)
        for name in pending:
            self.fs.delete_file(name)
        return len(fresh)

    def committed_sources(self) -> set[str]:
        """The sources committed so far, compacted or not (safe while a driver writes)."""
        return ({r["source"] for r in self._shard_rows(["source"])}
                | {r["source"] for r in self._pending_rows().values()})

    def completed(self, fingerprint: str, retry_failed: bool = False) -> dict[str, str]:
        """source → content hash of its newest row written by a run with the same fingerprint
        (failed documents left out with ``retry_failed``)."""
        newest: dict[str, tuple[str, str, str]] = {}
        for row in self._shard_rows(["source", "doc_id", "fingerprint", "status", "finished_at"]):
            source, at = row["source"], row["finished_at"]
            if row["fingerprint"] == fingerprint and (source not in newest or at >= newest[source][2]):
                newest[source] = (row["doc_id"], row["status"], at)
        return {s: d for s, (d, status, _) in newest.items() if not (retry_failed and status == "failed")}

    def write_shard(self, rows: list[dict]) -> str:
        """One shard, atomically (temporary name, then a move): ``parquet/part-….parquet``, and
        ``jsonl/part-….jsonl`` with ``jsonl`` (written first: the Parquet shard is what counts)."""
        name = f"part-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"
        if self.jsonl:
            self.fs.create_dir(f"{self.path}/jsonl", recursive=True)
            _atomic(self.fs, f"{self.path}/jsonl/{name}.jsonl",
                    "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode())
        self.fs.create_dir(f"{self.path}/parquet", recursive=True)
        tmp = f"{self.path}/parquet/.{name}.parquet.tmp"
        pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMA), tmp, filesystem=self.fs)
        self.fs.move(tmp, f"{self.path}/parquet/{name}.parquet")
        return f"{name}.parquet"

    def write_summary(self, summary: dict) -> None:
        self.fs.create_dir(self.path, recursive=True)
        _atomic(self.fs, f"{self.path}/_SUMMARY.json", json.dumps(summary, indent=2).encode())

    def _pending_file(self, row: dict) -> str:
        return f"{self.pending}/{hashlib.sha256(row['source'].encode()).hexdigest()[:32]}.json"

    def _pending_rows(self) -> dict[str, dict]:
        """pending file → its row (a file compacted away meanwhile is left out)."""
        if self.fs.get_file_info(self.pending).type != pafs.FileType.Directory:
            return {}
        rows = {}
        for info in self.fs.get_file_info(pafs.FileSelector(self.pending)):
            if info.path.endswith(".json"):
                try:
                    with self.fs.open_input_stream(info.path) as stream:
                        rows[info.path] = json.loads(stream.read())
                except FileNotFoundError:
                    pass
        return rows

    def _shard_rows(self, columns: list[str]) -> list[dict]:
        path = f"{self.path}/parquet"
        if self.fs.get_file_info(path).type != pafs.FileType.Directory:
            return []
        parts = sorted(f.path for f in self.fs.get_file_info(pafs.FileSelector(path)) if f.path.endswith(".parquet"))
        return [row for part in parts for row in pq.read_table(part, filesystem=self.fs, columns=columns).to_pylist()]


def _atomic(fs: pafs.FileSystem, target: str, data: bytes) -> None:
    """``data`` at ``target`` all or nothing: a temporary file (synced on a local disk), then a move."""
    tmp = target.rsplit("/", 1)
    tmp = f"{tmp[0]}/.{tmp[1]}.tmp"
    if isinstance(fs, pafs.LocalFileSystem):
        with open(tmp, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, target)
        return
    with fs.open_output_stream(tmp) as out:
        out.write(data)
    fs.move(tmp, target)
