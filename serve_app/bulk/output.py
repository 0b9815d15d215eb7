"""A bulk job's output and its commit protocol.

Output layout::

    <output>/markdown/<doc_id>.md      with --markdown-files, written at commit
    <output>/_pending/<key>.json       one finished document, committed before it counts as done
    <output>/parquet/part-….parquet    shards compacted from those (then the pending files go)
    <output>/jsonl/part-….jsonl        each shard's rows again, with --jsonl (a twin of the Parquet shard)
    <output>/_SUMMARY.json

The invariant: **a source appears in the output exactly once per fingerprint, whatever kills the
driver and when** (in the Parquet shards, and in the JSONL twins with ``--jsonl``; a failed document
parsed again with ``--retry-failed`` adds its new row beside the failed one, and readers take the
newest). It holds because every step is atomic (a file is written under a temporary name and moved
into place) and every step can be repeated after a crash without a second copy:

- ``commit``: the Markdown file, then the pending file. The pending file in place is the commit: the
  document is done; killed before it, the document was in flight and is parsed again.
- ``compact``: the rows not in a shard yet (this ``Output`` remembers the rows it put in shards, so a
  compaction repeated after an interruption writes nothing twice) go into one Parquet shard, the
  shard's commit; then its JSONL twin, made from the same table; then the pending files go.
- ``recover`` (the next run, before anything else): pending rows that no shard holds (by source and
  ``finished_at``, a row's identity) go into a shard; a shard without its JSONL twin gets it; then
  every pending file and every temporary left by a write cut short goes. Killed inside ``recover``,
  the run after does the same from where it stopped.
- ``completed`` (what the next run skips) reads the shards after ``recover``, so a committed document
  is never parsed again.

``serve_app.crashpoints`` names each step's end (``commit:markdown``, ``commit:pending``,
``compact:shard``, ``compact:jsonl``, ``compact:delete``, ``recover:shard``, ``recover:jsonl``,
``recover:delete``, ``summary``); ``tests/integration/test_bulk_crash.py`` kills the driver at each.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from serve_app.bulk.io import filesystem
from serve_app.crashpoints import reached

SCHEMA = pa.schema([
    ("doc_id", pa.string()), ("source", pa.string()), ("fingerprint", pa.string()), ("status", pa.string()),
    ("error_kind", pa.string()), ("error", pa.string()), ("page_count", pa.int32()), ("pages_ok", pa.int32()),
    ("markdown", pa.list_(pa.string())), ("pruned_result", pa.list_(pa.string())),
    ("page_status", pa.list_(pa.string())), ("page_errors", pa.list_(pa.string())),
    ("page_error_kinds", pa.list_(pa.string())),
    ("seconds", pa.float64()), ("finished_at", pa.string()),
])


def row_key(row: dict) -> tuple[str, str]:
    """A row's identity: its source and when it finished (a document parsed again is a new row)."""
    return row["source"], row["finished_at"]


class Output:
    """A bulk job's output directory (or URI): commits finished documents, compacts them into
    shards, recovers what a killed driver left, and answers which documents are done."""

    def __init__(self, uri: str, markdown_files: bool = False, jsonl: bool = False):
        self.fs, self.path = filesystem(uri)
        self.markdown_files, self.jsonl = markdown_files, jsonl
        self.pending = f"{self.path}/_pending"
        self.in_shards: set[tuple[str, str]] = set()  # rows this Output put in shards
        self._lock: int | None = None  # the claim's descriptor (``claim``/``release``)

    def claim(self) -> None:
        """This run is the only writer of the output (on a local or mounted disk: a lock the kernel
        drops when the process ends, however it ends); another run writing now is an error, since
        two runs on one output would each parse and write the same documents."""
        if not isinstance(self.fs, pafs.LocalFileSystem):
            return  # an object store has no lock: run one job per output
        import fcntl

        os.makedirs(self.path, exist_ok=True)
        handle = os.open(f"{self.path}/.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(handle, 200).decode(errors="replace").strip() or "?"
            os.close(handle)
            raise SystemExit(f"[bulk] another bulk run (pid {holder}) is writing to {self.path}; wait until it "
                             "ends (ray job status) or stop it, then submit again") from None
        os.ftruncate(handle, 0)
        os.write(handle, f"{os.getpid()} on {os.uname().nodename}\n".encode())
        self._lock = handle  # held until ``release`` or the process exits

    def release(self) -> None:
        """The end of this run's claim (another run in this process, or another process, may write)."""
        handle, self._lock = self._lock, None
        if handle is not None:
            os.close(handle)  # closing the descriptor drops the flock

    def commit(self, row: dict) -> None:
        """One finished document, durably (written, synced on a local disk, then renamed into
        place): from here on a killed driver does not parse it again."""
        self.fs.create_dir(self.pending, recursive=True)
        if self.markdown_files and row["doc_id"] and row["status"] != "failed":
            self.fs.create_dir(f"{self.path}/markdown", recursive=True)
            _atomic(self.fs, f"{self.path}/markdown/{row['doc_id']}.md", "\n\n".join(row["markdown"] or []).encode())
            reached("commit:markdown")
        _atomic(self.fs, self._pending_file(row), json.dumps(row, ensure_ascii=False).encode())
        reached("commit:pending")

    def compact(self, rows: list[dict]) -> None:
        """Committed documents into one shard (those not in one already), then their pending files
        removed. Safe to call again with the same rows after it was interrupted."""
        fresh = [row for row in rows if row_key(row) not in self.in_shards]
        if fresh:
            self.write_shard(fresh, step="compact")
        for row in rows:
            self._delete(self._pending_file(row), "compact:delete")

    def recover(self) -> int:
        """Finish what a killed driver left (see the module's docstring); returns the documents
        that went into a shard here."""
        pending = self._pending_rows()
        written = {row_key(r) for r in self._shard_rows(["source", "finished_at"])}
        fresh = [r for r in pending.values() if row_key(r) not in written]
        if fresh:
            self.write_shard(fresh, step="recover")
        if self.jsonl:
            self._repair_jsonl()
        for name in pending:
            self._delete(name, "recover:delete")
        for folder in (self.pending, f"{self.path}/parquet", f"{self.path}/jsonl"):
            for name in self._listing(folder):
                if name.rsplit("/", 1)[-1].startswith(".") and name.endswith(".tmp"):
                    self._delete(name)  # a write cut short: never read, never moved into place
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

    def write_shard(self, rows: list[dict], step: str = "compact") -> str:
        """One shard, atomically (temporary name, then a move): ``parquet/part-….parquet``, then with
        ``jsonl`` its twin ``jsonl/part-….jsonl`` from the same table."""
        name = f"part-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"
        table = pa.Table.from_pylist(rows, schema=SCHEMA)
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink)
        self.fs.create_dir(f"{self.path}/parquet", recursive=True)
        # synced with its folder: the pending files it replaces go next, so a power loss must not undo it
        _atomic(self.fs, f"{self.path}/parquet/{name}.parquet", sink.getvalue().to_pybytes(), sync_folder=True)
        self.in_shards.update(row_key(r) for r in rows)
        reached(f"{step}:shard")
        if self.jsonl:
            self._write_jsonl(name, table)
            reached(f"{step}:jsonl")
        return f"{name}.parquet"

    def write_summary(self, summary: dict) -> None:
        self.fs.create_dir(self.path, recursive=True)
        _atomic(self.fs, f"{self.path}/_SUMMARY.json", json.dumps(summary, indent=2).encode())
        reached("summary")

    def _write_jsonl(self, name: str, table: pa.Table) -> None:
        self.fs.create_dir(f"{self.path}/jsonl", recursive=True)
        _atomic(self.fs, f"{self.path}/jsonl/{name}.jsonl",
                "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in table.to_pylist()).encode())

    def _repair_jsonl(self) -> None:
        """Every Parquet shard gets its JSONL twin (one is missing where a driver died between them)."""
        twins = {n.rsplit("/", 1)[-1][: -len(".jsonl")] for n in self._listing(f"{self.path}/jsonl")
                 if n.endswith(".jsonl")}
        for part in self._listing(f"{self.path}/parquet"):
            name = part.rsplit("/", 1)[-1][: -len(".parquet")]
            if part.endswith(".parquet") and not name.startswith(".") and name not in twins:
                self._write_jsonl(name, pq.read_table(part, filesystem=self.fs, schema=SCHEMA))
                reached("recover:jsonl")

    def _pending_file(self, row: dict) -> str:
        return f"{self.pending}/{hashlib.sha256(row['source'].encode()).hexdigest()[:32]}.json"

    def _pending_rows(self) -> dict[str, dict]:
        """pending file → its row (a file compacted away meanwhile is left out)."""
        rows = {}
        for name in self._listing(self.pending):
            if name.endswith(".json"):
                try:
                    with self.fs.open_input_stream(name) as stream:
                        rows[name] = json.loads(stream.read())
                except FileNotFoundError:
                    pass
        return rows

    def _shard_rows(self, columns: list[str]) -> list[dict]:
        parts = sorted(p for p in self._listing(f"{self.path}/parquet")
                       if p.endswith(".parquet") and not p.rsplit("/", 1)[-1].startswith("."))
        return [row for part in parts for row in pq.read_table(part, filesystem=self.fs, columns=columns).to_pylist()]

    def _listing(self, folder: str) -> list[str]:
        selector = pafs.FileSelector(folder, allow_not_found=True)
        return [f.path for f in self.fs.get_file_info(selector) if f.type == pafs.FileType.File]

    def _delete(self, name: str, point: str = "") -> None:
        try:
            self.fs.delete_file(name)
        except FileNotFoundError:
            return
        if point:
            reached(point)


def _atomic(fs: pafs.FileSystem, target: str, data: bytes, sync_folder: bool = False) -> None:
    """``data`` at ``target`` all or nothing: a temporary file (synced on a local disk), then a move
    (made durable too with ``sync_folder``)."""
    folder, base = target.rsplit("/", 1)
    tmp = f"{folder}/.{base}.tmp"
    if isinstance(fs, pafs.LocalFileSystem):
        with open(tmp, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, target)
        if sync_folder:
            handle = os.open(folder, os.O_RDONLY)
            try:
                os.fsync(handle)
            finally:
                os.close(handle)
        return
    with fs.open_output_stream(tmp) as out:
        out.write(data)
    fs.move(tmp, target)
