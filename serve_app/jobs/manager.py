"""The job manager: one named, detached Ray actor per application that runs submitted documents
through the same stages (by handle) and the same page path as ``POST /layout-parsing``, and keeps
every job in a :class:`~serve_app.jobs.store.JobFiles` directory.

What it survives:
- several ingress replicas, and the restart of any of them: jobs do not run in the ingress, and
  every replica finds the same actor by name;
- its own restart (``max_restarts=-1``): the directory is the truth; a restarted manager reloads the
  records and resumes unfinished jobs, parsing only the pages that were not saved yet;
- the loss of its node only with a ``jobs.store`` that every node reaches (a pyarrow filesystem
  URI such as ``s3://…`` or a shared mount); with the default local directory those jobs are lost.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import time
from typing import Any, Optional

from deployments.renderer import InputError
from serve_app.config import AppConfig
from serve_app.crashpoints import reached
from serve_app.jobs.store import ACTIVE, JobFiles, JobRecord, default_root
from serve_app.options import ParseOptions
from serve_app.parser import DocumentParser, ObjectStore, StageUnavailable, TooManyPages, data_info
from serve_app.protocol import InferRequest
from serve_app.respond import PageOutput, document_entries, finished_page_entry, saved_page_output

log = logging.getLogger("serve_app")
#: How often a running job's record (its progress) is rewritten; each finished page is written at once.
PROGRESS_SAVE_S = 2.0


def owner_of(api_key: Optional[str]) -> str:
    """Jobs belong to the API key they were submitted with (stored as a hash, never the key)."""
    return hashlib.sha256(api_key.encode()).hexdigest()[:16] if api_key else ""


class JobError(Exception):
    """A refusal with its HTTP status (429 too many jobs, 507 store full, 404 unknown, 409 not done).
    The manager's methods return it (it crosses the actor boundary as data) rather than raise it."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message

    def __reduce__(self):
        return JobError, (self.status, self.message)


def answers(method):
    """The method's JobError as its return value."""
    @functools.wraps(method)
    async def call(self, *args, **kwargs):
        try:
            return await method(self, *args, **kwargs)
        except JobError as exc:
            return exc
    return call


class JobManager:
    """Plain class; ``actor_name``/``get_or_create`` make it the application's detached actor."""

    def __init__(self, renderer, layout, recognizer, config: AppConfig, clock=time.time, store=ObjectStore):
        self.handles = (renderer, layout, recognizer)
        self.clock, self.store = clock, store
        self.tasks: dict[str, asyncio.Task] = {}
        self.started = False
        self.configure(config)
        self.records = {r.job_id: r for r in self.files.records()}

    def configure(self, config: AppConfig) -> None:
        """The application's current config (an ingress calls this as it starts, so a redeployed
        application's settings reach a manager that outlived the old one)."""
        self.config = config
        self.files = JobFiles(config.jobs.store or default_root(config.name))
        self.parser = DocumentParser(*self.handles, config, self.store)
        self.slots = asyncio.Semaphore(config.jobs.max_running)

    async def _start(self) -> None:
        """On the first call after (re)start: resume unfinished jobs, start the TTL sweep."""
        if self.started:
            return
        self.started = True
        for record in list(self.records.values()):
            if record.status in ACTIVE and not await asyncio.to_thread(self.files.exists, self._input(record)):
                self._delete(record)  # a submission cut short before its input was stored: the caller's repeat makes it again
            elif record.status in ACTIVE:
                record.resumed += record.status == "running"
                record.status = "queued"
                self._launch(record)
            else:
                await asyncio.to_thread(self._prune, record)
        asyncio.get_running_loop().create_task(self._sweep_forever())

    # -- the API's operations ------------------------------------------------------------------
    @answers
    async def submit(self, options: dict[str, Any], data: bytes, kind: str, owner: str, log_id: Optional[str],
                     job_id: Optional[str] = None) -> dict:
        """A new job. ``job_id`` (chosen by the caller) makes the call idempotent: the ingress repeats
        it when the manager died during it, and gets the job the first call made, if it made one."""
        await self._start()
        if job_id in self.records and self.records[job_id].owner == owner:
            return self.records[job_id].public(self.clock())
        limits = self.config.jobs
        active = sum(r.owner == owner and r.status in ACTIVE for r in self.records.values())
        if active >= limits.max_active_per_key:
            raise JobError(429, f"{active} jobs of this API key are queued or running (jobs.max_active_per_key "
                           f"{limits.max_active_per_key}); wait for one to finish or cancel one")
        stored = sum(r.stored_bytes for r in self.records.values())
        cap = int(limits.max_stored_mb * 2**20)
        if stored + len(data) > cap:
            raise JobError(507, f"the job store is full ({stored / 2**20:.1f} MB of {limits.max_stored_mb:g} MB, "
                           "jobs.max_stored_mb); fetch finished jobs and DELETE them, or wait for their TTL")
        job_id = job_id or JobFiles.new_id()
        record = JobRecord(job_id=job_id, log_id=log_id or job_id, owner=owner, kind=kind, options=options,
                           created=self.clock())
        self.records[job_id] = record  # counted by the limits of the next submission at once
        self.files.save(record)
        record.stored_bytes = len(data)
        await asyncio.to_thread(self.files.write, self.files.path(job_id, "input"), data, "jobs:input")
        self.files.save(record)
        self._launch(record)
        return record.public(self.clock())

    @answers
    async def status(self, job_id: str, owner: str) -> dict:
        await self._start()
        return self._get(job_id, owner).public(self.clock())

    @answers
    async def result(self, job_id: str, owner: str) -> dict:
        """The head of the envelope ``POST /layout-parsing`` would have answered (``errorCode`` 0, or
        the job's error), with ``resultBytes`` when a result is stored (its JSON comes from
        :meth:`result_pieces`); 409 while the job is not finished."""
        await self._start()
        record = self._get(job_id, owner)
        if record.status in ACTIVE:
            raise JobError(409, f"job {job_id} is {record.status} ({record.pages_done}/{record.pages_total or '?'} "
                           "pages); poll GET /jobs/{id} until its status is done")
        if record.status == "cancelled":
            raise JobError(409, f"job {job_id} was cancelled; it has no result")
        body: dict[str, Any] = {"logId": record.log_id, "errorCode": record.error_code,
                                "errorMsg": record.error_msg or "Success"}
        if record.status == "done":
            info = await asyncio.to_thread(self.files.fs.get_file_info, self.files.path(job_id, "result.json"))
            body["resultBytes"] = info.size
        return body

    async def result_pieces(self, job_id: str, owner: str, size: int):
        """A done job's stored ``result`` JSON in pieces of ``size`` bytes (a Ray streaming
        generator: the manager never holds a long result whole, nor does the ingress)."""
        record = self._get(job_id, owner)
        pieces = self.files.read_pieces(self.files.path(record.job_id, "result.json"), size)
        while piece := await asyncio.to_thread(next, pieces, b""):
            yield piece

    @answers
    async def cancel(self, job_id: str, owner: str) -> dict:
        """Cancel a queued or running job (its pages in flight are cancelled in the stages, so the
        engine aborts their requests); a finished job is deleted with its files."""
        await self._start()
        record = self._get(job_id, owner)
        if record.status in ACTIVE:
            record.status, record.finished = "cancelled", self.clock()
            self.files.save(record)
            task = self.tasks.get(job_id)
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
            self._prune(record)
            return record.public(self.clock())
        self._delete(record)
        return {**record.public(self.clock()), "deleted": True}

    async def counts(self) -> dict[str, int]:
        """Jobs by status, and how many job tasks are running now (tests, metrics)."""
        await self._start()
        out: dict[str, int] = {}
        for r in self.records.values():
            out[r.status] = out.get(r.status, 0) + 1
        out["tasks"] = sum(not t.done() for t in self.tasks.values())
        return out

    async def job_ids(self) -> list[str]:
        """Every job the manager keeps (tests, operations)."""
        await self._start()
        return sorted(self.records)

    # -- running ---------------------------------------------------------------------------------
    def _get(self, job_id: str, owner: str) -> JobRecord:
        record = self.records.get(job_id)
        if record is None or record.owner != owner or self._expired(record):
            raise JobError(404, f"no job {job_id}: unknown, submitted with another API key, or deleted after "
                           f"its results were kept {self.config.jobs.ttl_s:g} s (jobs.ttl_s)")
        return record

    def _launch(self, record: JobRecord) -> None:
        self.tasks[record.job_id] = asyncio.get_running_loop().create_task(self._run(record))

    async def _run(self, record: JobRecord) -> None:
        try:
            async with self.slots:
                if record.status != "queued":
                    return
                record.status, record.started = "running", record.started or self.clock()
                self.files.save(record)
                await self._parse(record)
        except asyncio.CancelledError:
            log.info("[%s] job %s cancelled", record.log_id, record.job_id)
        except Exception as exc:  # noqa: BLE001 - the job fails, the manager goes on
            log.exception("[%s] job %s failed", record.log_id, record.job_id)
            self._finish(record, "failed", 500, f"internal error: {type(exc).__name__}: {exc}")
        finally:
            self.tasks.pop(record.job_id, None)

    async def _parse(self, record: JobRecord) -> None:
        """The job's commit protocol: each page's entry written as the page finishes (a restarted
        manager parses only the pages not written), then ``result.json``, then the record says
        ``done``, then the page files go. Killed after ``result.json``, the restarted manager only
        finishes the bookkeeping; killed before, it parses the pages not written yet."""
        files, job_id = self.files, record.job_id
        if await asyncio.to_thread(files.exists, files.path(job_id, "result.json")):  # written before a restart
            return await self._done(record, await asyncio.to_thread(files.saved_pages, job_id))
        options = self._options(record)
        data = await asyncio.to_thread(files.read, files.path(job_id, "input"))
        saved = await asyncio.to_thread(files.saved_pages, job_id)
        outputs: dict[int, PageOutput] = {}
        last_save = [time.monotonic()]

        async def on_page(out: PageOutput) -> None:
            entry = finished_page_entry(out, options)
            index = out.result.page_index
            record.stored_bytes += await asyncio.to_thread(files.write_json, files.page_path(job_id, index), entry,
                                                           "jobs:page")
            if options.restructure.enabled:  # restructuring needs the pages themselves; otherwise entries suffice
                outputs[index] = out
            saved[index] = entry
            record.pages_done = len(saved)
            if entry["status"] == "failed":
                record.failed_pages = sorted({*record.failed_pages, index})
            if time.monotonic() - last_save[0] >= PROGRESS_SAVE_S:  # the pages are the durable part
                last_save[0] = time.monotonic()
                await asyncio.to_thread(files.save, record)

        opened = await self._parse_pages(record, options, data, saved, on_page)
        if opened is None:
            return  # finished with an error
        doc, parsed = opened
        if options.restructure.enabled:
            pages = [outputs.get(i) or saved_page_output(saved[i], i) for i in doc.page_indices]
            entries = document_entries(pages, options)
        else:
            entries = [saved[i] for i in doc.page_indices]
        result = {"layoutParsingResults": entries, "dataInfo": data_info(parsed)}
        await asyncio.to_thread(files.write_json, files.path(job_id, "result.json"), result, "jobs:result")
        await self._done(record, saved)

    def _options(self, record: JobRecord) -> ParseOptions:
        cfg = self.config
        request = InferRequest(file="", **record.options)
        return ParseOptions.from_request(request, cfg.layout.options, cfg.recognizer.plan, cfg.ingress.visualize)

    async def _parse_pages(self, record: JobRecord, options: ParseOptions, data: bytes, saved: dict, on_page):
        """Open the document and parse the pages not saved yet: (document, parsed pages), or None
        when the job finished with an error."""
        deadline = time.monotonic() + options.deadline_s if options.deadline_s else None
        try:
            doc = await self.parser.open(data, record.kind, options)
            record.pages_total, record.pages_done = len(doc.page_indices), len(saved)
            record.failed_pages = sorted(i for i, e in saved.items() if e["status"] == "failed")
            self.files.save(record)
            run = self.parser.run(doc, options, record.log_id, deadline, on_page, frozenset(saved))
            return doc, await (asyncio.wait_for(run, options.deadline_s) if options.deadline_s else run)
        except (InputError, TooManyPages) as exc:
            self._finish(record, "failed", 422, str(exc))
        except StageUnavailable as exc:
            self._finish(record, "failed", 503, f"{exc}; submit the job again")
        except asyncio.TimeoutError:
            self._finish(record, "failed", 504, f"the job was not done within deadlineSeconds "
                         f"{options.deadline_s:g}; submit it again with a larger deadlineSeconds or without one")
        return None

    async def _done(self, record: JobRecord, saved: dict[int, dict]) -> None:
        """``result.json`` is in place: the record says done (then ``_prune`` removes the page files)."""
        files, job_id = self.files, record.job_id
        sizes = await asyncio.to_thread(lambda: [files.fs.get_file_info(files.path(job_id, name)).size
                                                 for name in ("result.json", "input")])
        record.stored_bytes = sum(sizes)
        record.pages_done = len(saved) or record.pages_total or 0
        record.failed_pages = sorted(i for i, entry in saved.items() if entry["status"] == "failed")
        self._finish(record, "done", 0, "")

    def _finish(self, record: JobRecord, status: str, code: int, message: str) -> None:
        record.status, record.error_code, record.error_msg = status, code, message
        record.finished = self.clock()
        self.files.save(record)
        reached("jobs:finished")
        self._prune(record)

    def _prune(self, record: JobRecord) -> None:
        """A finished job keeps only what its result needs: a done one its input and result, a failed
        or cancelled one its record. (Also run for every finished job when a manager starts: one
        killed between a job's record and this step left its pages.)"""
        self.files.remove_pages(record.job_id)
        if record.status in ("failed", "cancelled") and record.stored_bytes:
            try:
                self.files.fs.delete_file(self._input(record))
            except (FileNotFoundError, OSError):
                pass
            record.stored_bytes = 0
            self.files.save(record)

    def _input(self, record: JobRecord) -> str:
        return self.files.path(record.job_id, "input")

    # -- TTL -------------------------------------------------------------------------------------
    def _expired(self, record: JobRecord) -> bool:
        return record.finished is not None and self.clock() > record.finished + self.config.jobs.ttl_s

    def _delete(self, record: JobRecord) -> None:
        self.records.pop(record.job_id, None)
        try:
            self.files.remove(record.job_id)
        except (FileNotFoundError, OSError):
            pass

    def sweep(self) -> int:
        """Delete every expired job; returns how many."""
        expired = [r for r in self.records.values() if self._expired(r)]
        for record in expired:
            self._delete(record)
        return len(expired)

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(min(60.0, self.config.jobs.ttl_s / 4))
            self.sweep()


def actor_name(config: AppConfig) -> str:
    return f"paddleocr-vl-jobs:{config.name}"


def get_or_create(renderer, layout, recognizer, config: AppConfig, **actor_options):
    """The application's job manager actor: detached (it outlives any ingress replica), restarted
    by Ray if it dies, on no CPU of its own (it only awaits the stages and writes small files).
    ``actor_options`` add Ray actor options (a placement, a ``runtime_env``) when it is created."""
    import ray

    actor = ray.remote(JobManager).options(**{
        "name": actor_name(config), "namespace": "paddleocr-vl-serve", "get_if_exists": True,
        "lifetime": "detached", "max_restarts": -1, "max_task_retries": -1, "num_cpus": 0, "max_concurrency": 1000,
        **actor_options}).remote(renderer, layout, recognizer, config)
    actor.configure.remote(config)
    return actor
