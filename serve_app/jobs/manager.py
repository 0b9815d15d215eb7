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
from typing import Optional

from serve_app.config import AppConfig
from serve_app.errors import RETRY_LATER_S, ServiceError
from serve_app.jobs.runner import JobRunner
from serve_app.jobs.store import ACTIVE, JobFiles, JobRecord, default_root
from serve_app.options import ParseOptions
from serve_app.pipeline import DocumentPipeline, ServeStages, Stages
from serve_app.protocol import envelope_body

log = logging.getLogger("serve_app")


def owner_of(api_key: Optional[str]) -> str:
    """Jobs belong to the API key they were submitted with (stored as a hash, never the key)."""
    return hashlib.sha256(api_key.encode()).hexdigest()[:16] if api_key else ""


def client_of(owner: str, address: str) -> str:
    """Who the per-client job limits count: an API key (its owner hash) and an address, so that
    they hold without a key too (stored as a hash, never the address)."""
    return hashlib.sha256(f"{owner}|{address}".encode()).hexdigest()[:16]


def answers(method):
    """The method's refusal (a ``ServiceError``: 404, 409, 429, 507) as its return value: it crosses
    the actor boundary as data, not as Ray's wrapped exception."""
    @functools.wraps(method)
    async def call(self, *args, **kwargs):
        try:
            return await method(self, *args, **kwargs)
        except ServiceError as exc:
            return exc
    return call


class JobManager(JobRunner):
    """Plain class; ``actor_name``/``get_or_create`` make it the application's detached actor."""

    def __init__(self, renderer, layout, recognizer, config: AppConfig, clock=time.time, stages: Optional[Stages] = None):
        """The stages' Serve handles (``stages``: another transport instead, in tests)."""
        self.stages = stages or ServeStages(renderer, layout, recognizer)
        self.clock = clock
        self.tasks: dict[str, asyncio.Task] = {}
        self.started = False
        self.configure(config)
        self.records = {r.job_id: r for r in self.files.records()}

    def configure(self, config: AppConfig) -> None:
        """The application's current config (an ingress calls this as it starts, so a redeployed
        application's settings reach a manager that outlived the old one)."""
        self.config = config
        self.files = JobFiles(config.jobs.store or default_root(config.name))
        self.pipeline = DocumentPipeline.for_app(self.stages, config)
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
    async def submit(self, options: ParseOptions, data: bytes, kind: str, owner: str, log_id: Optional[str],
                     job_id: Optional[str] = None, client: str = "") -> dict:
        """A new job with the ``options`` the ingress decided (kept in the record: the job runs with
        them whatever the config is when it runs or resumes). ``job_id`` (chosen by the caller) makes
        the call idempotent: the ingress repeats it when the manager died during it, and gets the
        job the first call made, if it made one. ``client`` (:func:`client_of`) is what the
        per-client limits count."""
        await self._start()
        if job_id in self.records and self.records[job_id].owner == owner:
            return self.records[job_id].public(self.clock())
        self._check_room(client, len(data))
        job_id = job_id or JobFiles.new_id()
        record = JobRecord(job_id=job_id, log_id=log_id or job_id, owner=owner, client=client, kind=kind,
                           decided=options.model_dump(mode="json"), created=self.clock())
        self.records[job_id] = record  # counted by the limits of the next submission at once
        self.files.save(record)
        record.stored_bytes = len(data)
        await asyncio.to_thread(self.files.write, self.files.path(job_id, "input"), data, "jobs:input")
        self.files.save(record)
        self._launch(record)
        return record.public(self.clock())

    def _check_room(self, client: str, size: int) -> None:
        """429 when the client has too many jobs or holds its share of the store; 507 when the
        store is full for everyone."""
        limits, mb = self.config.jobs, 2**20
        mine = [r for r in self.records.values() if r.client == client]
        active = sum(r.status in ACTIVE for r in mine)
        if active >= limits.max_active_per_client:
            raise ServiceError(429, f"{active} of your jobs are queued or running (jobs.max_active_per_client "
                               f"{limits.max_active_per_client}); wait for one to finish or cancel one", RETRY_LATER_S)
        stored = sum(r.stored_bytes for r in self.records.values())
        if stored + size > limits.max_stored_mb * mb:
            raise ServiceError(507, f"the job store is full ({stored / mb:.1f} MB of {limits.max_stored_mb:g} MB, "
                               "jobs.max_stored_mb); fetch finished jobs and DELETE them, or wait for their TTL",
                               RETRY_LATER_S)
        held, share = sum(r.stored_bytes for r in mine), limits.max_stored_mb * limits.max_client_share
        if held + size > share * mb:
            raise ServiceError(429, f"your jobs hold {held / mb:.1f} MB of the job store and this document is "
                               f"{size / mb:.1f} MB; one client may hold {share:g} MB (jobs.max_client_share of "
                               "jobs.max_stored_mb): fetch your finished jobs and DELETE them", RETRY_LATER_S)

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
            raise ServiceError(409, f"job {job_id} is {record.status} ({record.pages_done}/{record.pages_total or '?'} "
                               "pages); poll GET /jobs/{id} until its status is done")
        if record.status == "cancelled":
            raise ServiceError(409, f"job {job_id} was cancelled; it has no result")
        body = envelope_body(record.log_id, record.error_code, record.error_msg or "Success")
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
            raise ServiceError(404, f"no job {job_id}: unknown, submitted with another API key, or deleted after "
                               f"its results were kept {self.config.jobs.ttl_s:g} s (jobs.ttl_s)")
        return record

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
