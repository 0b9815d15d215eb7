"""Where jobs live: one directory per job on any pyarrow filesystem (a local directory, or a URI
such as ``s3://bucket/jobs`` that every node reaches).

    <root>/<job id>/job.json          the record (status, progress, limits' figures)
    <root>/<job id>/input             the document's bytes until the job ends (it is resumed from them)
    <root>/<job id>/pages/<n>.json    one finished page's entry, written as the page finishes
    <root>/<job id>/result.json       the whole ``result`` object, written once at the end

Files are written whole (to a temporary name, then moved where the filesystem can), so a reader
never sees half a record. The directory is the truth: the job manager's memory is a cache of it
that a restarted manager rebuilds with :meth:`JobFiles.records`. The order of a job's writes is its
commit protocol (``manager.py``): page files as pages finish, then ``result.json``, then the record
says ``done``, then the page files go; a manager killed at any of these steps finishes the job with
every page once (``tests/integration/test_jobs_crash.py`` kills it at each).
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Iterator, Literal, Optional

from pydantic import BaseModel, Field

from serve_app.crashpoints import reached

Status = Literal["queued", "running", "done", "failed", "cancelled"]
ACTIVE = ("queued", "running")
#: A job's id (``uuid4().hex``): the only directories of the store this application removes unasked.
JOB_ID = re.compile(r"[0-9a-f]{32}")
log = logging.getLogger(__name__)


class JobRecord(BaseModel):
    """A job as ``job.json`` holds it; :meth:`public` is what ``GET /jobs/{id}`` shows."""

    job_id: str
    log_id: str
    owner: str  # a hash of the caller's API key ("" without one): jobs are visible to their owner only
    client: str = ""  # a hash of the API key and the caller's address: what the per-client limits count
    status: Status = "queued"
    kind: str = "pdf"
    #: The ParseOptions decided at submission (JSON). ``options``: the request body of a job stored by
    #: an earlier version, decided again under the current config when it runs.
    decided: Optional[dict[str, Any]] = None
    options: dict[str, Any] = Field(default_factory=dict)
    created: float = Field(default_factory=time.time)
    started: Optional[float] = None
    finished: Optional[float] = None
    pages_total: Optional[int] = None
    pages_done: int = 0
    failed_pages: list[int] = Field(default_factory=list)  # 0-based page indices
    stored_bytes: int = 0
    error_code: int = 0
    error_msg: str = ""
    resumed: int = 0  # times a restarted job manager picked the job up again

    def public(self, now: Optional[float] = None) -> dict[str, Any]:
        now = time.time() if now is None else now
        end = self.finished or now
        elapsed = end - (self.started or end)
        eta = None
        if self.status == "running" and self.pages_total and self.pages_done:
            eta = round(elapsed / self.pages_done * (self.pages_total - self.pages_done), 1)
        return {"jobId": self.job_id, "logId": self.log_id, "status": self.status, "pagesDone": self.pages_done,
                "pagesTotal": self.pages_total, "failedPages": self.failed_pages,
                "elapsedSeconds": round(elapsed, 2), "etaSeconds": eta, "createdAt": self.created,
                "finishedAt": self.finished, "errorCode": self.error_code, "errorMsg": self.error_msg,
                "resumedAfterRestart": self.resumed}


def default_root(app_name: str) -> str:
    return str(Path(tempfile.gettempdir()) / "paddleocr-vl-serve" / "jobs" / app_name)


class JobFiles:
    """Reads and writes the job directories under ``root`` (a path or a pyarrow filesystem URI)."""

    def __init__(self, root: str):
        import pyarrow.fs as pafs

        if "://" in root:
            self.fs, self.root = pafs.FileSystem.from_uri(root)
        else:
            self.fs, self.root = pafs.LocalFileSystem(), os.path.abspath(root)
        self.local = isinstance(self.fs, pafs.LocalFileSystem)
        self.fs.create_dir(self.root, recursive=True)

    def path(self, job_id: str, *parts: str) -> str:
        return "/".join([self.root, job_id, *parts])

    @staticmethod
    def new_id() -> str:
        return uuid.uuid4().hex

    # -- whole files -------------------------------------------------------------------------
    def write(self, path: str, data: bytes, step: str = "") -> int:
        """``data`` at ``path``, whole or not at all. ``step`` names the write for the crash points
        (``serve_app.crashpoints``): ``<step>:tmp`` once written under a temporary name (local
        disks), ``<step>`` once in place."""
        self.fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
        target = f"{path}.tmp-{uuid.uuid4().hex[:8]}" if self.local else path
        with self.fs.open_output_stream(target) as out:
            out.write(data)
        if target != path:
            if step:
                reached(f"{step}:tmp")
            self.fs.move(target, path)
        if step:
            reached(step)
        return len(data)

    def read(self, path: str) -> bytes:
        with self.fs.open_input_stream(path) as stream:
            return stream.read()

    def read_pieces(self, path: str, size: int) -> Iterator[bytes]:
        """The file in pieces of ``size`` bytes (a long result is never held whole)."""
        with self.fs.open_input_stream(path) as stream:
            while piece := stream.read(size):
                yield piece

    def _surely_missing(self, path: str) -> bool:
        """The file is not there (False when the store cannot say now)."""
        try:
            return not self.exists(path)
        except OSError:
            return False

    def exists(self, path: str) -> bool:
        import pyarrow.fs as pafs

        return self.fs.get_file_info(path).type == pafs.FileType.File

    def write_json(self, path: str, value: Any, step: str = "") -> int:
        return self.write(path, json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode(), step)

    def read_json(self, path: str) -> Any:
        return json.loads(self.read(path))

    # -- jobs --------------------------------------------------------------------------------
    def save(self, record: JobRecord) -> None:
        self.write(self.path(record.job_id, "job.json"), record.model_dump_json().encode(), "jobs:record")

    def records(self) -> list[JobRecord]:
        """Every readable job record. A job's directory without a record (a submission cut short) is
        removed; nothing else is: a record that cannot be read now (a store that failed for a moment)
        or a directory that is not a job's (a store shared with others) is left as it is."""
        import pyarrow.fs as pafs

        out = []
        for info in self.fs.get_file_info(pafs.FileSelector(self.root, allow_not_found=True)):
            if info.type != pafs.FileType.Directory:
                continue
            record = f"{info.path}/job.json"
            try:
                out.append(JobRecord.model_validate_json(self.read(record)))
            except (OSError, ValueError) as exc:
                name = info.path.rstrip("/").rsplit("/", 1)[-1]
                if JOB_ID.fullmatch(name) and self._surely_missing(record):
                    self.fs.delete_dir(info.path)
                else:
                    log.warning("job store: %s left as it is (%s: %s)", info.path, type(exc).__name__, exc)
        return out

    def page_path(self, job_id: str, index: int) -> str:
        return self.path(job_id, "pages", f"{index:06d}.json")

    def saved_pages(self, job_id: str) -> dict[int, dict]:
        """Page index → stored entry, for the pages a job finished before its manager restarted (a
        page file cut short by a crash is removed: that page is parsed again)."""
        import pyarrow.fs as pafs

        pages = {}
        selector = pafs.FileSelector(self.path(job_id, "pages"), allow_not_found=True)
        for info in self.fs.get_file_info(selector):
            name = info.path.rsplit("/", 1)[-1]
            if name.endswith(".json") and name[:-5].isdigit():
                try:
                    pages[int(name[:-5])] = self.read_json(info.path)
                except (OSError, ValueError):
                    pass  # written in place (an object store) by a manager that died mid-write
            elif ".json.tmp-" in name:
                self.fs.delete_file(info.path)
        return pages

    def remove_pages(self, job_id: str) -> None:
        self.fs.delete_dir_contents(self.path(job_id, "pages"), missing_dir_ok=True)

    def remove(self, job_id: str) -> None:
        self.fs.delete_dir_contents(self.path(job_id), missing_dir_ok=True)
        try:
            self.fs.delete_dir(self.path(job_id))
        except FileNotFoundError:
            pass
