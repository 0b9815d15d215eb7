"""The job manager without Ray: the real DocumentPipeline over the in-process stages
(``test_pipeline``), jobs kept in a real directory. Ray, HTTP and restarts: tests/integration/test_jobs.py."""

from __future__ import annotations

import asyncio
import json

from deployments.recognizer.engines import GenerationResult
from devtools.documents import text_pdf
from serve_app.config import AppConfig
from serve_app.errors import ServiceError
from serve_app.jobs.manager import JobManager
from serve_app.jobs.store import JobFiles, JobRecord
from serve_app.options import ParseOptions
from serve_app.respond import document_entries, finished_page_entry
from test_pipeline import Recorder, parser, stages


class Clock:
    def __init__(self):
        self.now = 1_000.0

    def __call__(self):
        return self.now


class GatedEngine:
    """Answers only once ``gate`` is set; counts the requests it holds."""

    name, tasks = "gated", frozenset({"ocr", "table", "formula", "chart", "seal", "spotting"})

    def __init__(self):
        self.gate, self.entered, self.holding = asyncio.Event(), asyncio.Event(), 0

    async def start(self):
        pass

    async def generate(self, request):
        self.holding += 1
        self.entered.set()
        try:
            await self.gate.wait()
            return GenerationResult("gated text", 2, "stop")
        finally:
            self.holding -= 1

    def unfinished(self):
        return self.holding


def manager(tmp_path, engine=None, clock=None, **jobs) -> tuple[JobManager, Recorder]:
    config = AppConfig(jobs={"store": str(tmp_path / "jobs"), **jobs})
    local = stages(config, engine=engine)
    return JobManager(None, None, None, config, clock=clock or Clock(), stages=local), local.recognizer


def decided(request: dict) -> ParseOptions:
    """A job's options as the ingress decides them at submission."""
    return ParseOptions.from_request(request, AppConfig().option_defaults("job"))


async def result_of(m: JobManager, job_id: str, owner: str) -> dict:
    """``GET /jobs/{id}/result``'s body: the head, and the stored result read in small pieces."""
    head = await m.result(job_id, owner)
    if isinstance(head, ServiceError) or "resultBytes" not in head:
        return head
    size = head.pop("resultBytes")
    data = b"".join([piece async for piece in m.result_pieces(job_id, owner, 1000)])
    assert len(data) == size
    return {**head, "result": json.loads(data)}


async def until_finished(m: JobManager, job_id: str, owner: str = "") -> dict:
    task = m.tasks.get(job_id)
    if task is not None:
        await task
    return await m.status(job_id, owner)


def restarted(tmp_path, job_id: str) -> tuple[dict, dict, Recorder]:
    """A manager started on the store ``tmp_path`` holds (as Ray restarts one): the job's final
    status and result, and the recognizer's record of what it was asked."""
    m, recognizer = manager(tmp_path)

    async def go():
        await m.status(job_id, "")  # the first call resumes unfinished jobs
        status = await until_finished(m, job_id)
        return status, await result_of(m, job_id, "")

    return (*asyncio.run(go()), recognizer)


def test_a_job_gives_the_sync_result_and_keeps_only_what_the_result_needs(tmp_path):
    m, _ = manager(tmp_path)
    data = text_pdf(3)

    async def go():
        job = await m.submit(decided({"visualize": False}), data, "pdf", "", "my-log")
        assert job["status"] == "queued" and job["logId"] == "my-log"
        status = await until_finished(m, job["jobId"])
        return job["jobId"], status, await result_of(m, job["jobId"], "")

    job_id, status, body = asyncio.run(go())
    assert (status["status"], status["pagesDone"], status["pagesTotal"], status["failedPages"]) == ("done", 3, 3, [])
    assert (body["logId"], body["errorCode"], body["errorMsg"]) == ("my-log", 0, "Success")
    p, _, _ = parser()
    options = ParseOptions.from_request({"visualize": False})
    doc = asyncio.run(p.parse(data, "pdf", options, "log"))
    assert body["result"]["layoutParsingResults"] == json.loads(json.dumps(document_entries(doc.pages, options)))
    assert body["result"]["dataInfo"]["numPages"] == 3
    files = m.files
    assert files.saved_pages(job_id) == {} and files.read_json(files.path(job_id, "result.json")) == body["result"]


def test_a_restarted_manager_resumes_a_job_and_parses_only_the_pages_not_saved(tmp_path):
    """What a manager that died mid-job leaves: the record (running), the input, two saved pages."""
    data = text_pdf(4)
    first, _ = manager(tmp_path)
    options = ParseOptions.from_request({"visualize": False})
    p, _, _ = parser()
    done = asyncio.run(p.parse(data, "pdf", options, "log", None))
    files = first.files
    record = JobRecord(job_id="j1", log_id="j1", owner="", status="running", options={"visualize": False},
                       pages_total=4, pages_done=2, started=900.0)
    files.save(record)
    files.write(files.path("j1", "input"), data)
    for out in done.pages[:2]:
        files.write_json(files.page_path("j1", out.result.page_index), finished_page_entry(out, options))

    status, body, recognizer = restarted(tmp_path, "j1")
    assert status["status"] == "done" and status["resumedAfterRestart"] == 1
    # decided now, over the jobs' defaults: each page gets what is left of the default job deadline
    assert all(0 < r.timeout_s <= 21600 for r in recognizer.requests) and len(recognizer.requests) == 2
    assert body["result"]["layoutParsingResults"] == json.loads(json.dumps(document_entries(done.pages, options)))


def test_a_manager_killed_after_the_result_finishes_the_job_without_parsing_and_tidies_finished_ones(tmp_path):
    """What a manager killed after writing ``result.json`` leaves (record running, pages, result), and
    what one killed after saving a finished record leaves (its pages)."""
    first, _ = manager(tmp_path)
    files = first.files
    result = {"layoutParsingResults": [{"page": n} for n in range(3)], "dataInfo": {"numPages": 3}}
    for job_id, status in (("written", "running"), ("finished", "done")):
        files.save(JobRecord(job_id=job_id, log_id=job_id, owner="", status=status, pages_total=3, pages_done=1,
                             finished=None if status == "running" else 999.0))
        files.write(files.path(job_id, "input"), text_pdf(3))
        for n in range(3):
            files.write_json(files.page_path(job_id, n), {"status": "failed" if n == 1 else "ok"})
        files.write_json(files.path(job_id, "result.json"), result)

    status, body, recognizer = restarted(tmp_path, "written")
    assert (status["status"], status["pagesDone"], status["failedPages"]) == ("done", 3, [1])
    assert body["result"] == result and recognizer.requests == []  # nothing parsed again
    assert files.saved_pages("written") == {} and files.saved_pages("finished") == {}


def test_cancel_stops_the_engine_work_and_frees_the_job_store(tmp_path):
    engine = GatedEngine()
    m, _ = manager(tmp_path, engine)

    async def go():
        job = await m.submit(decided({"visualize": False}), text_pdf(3), "pdf", "", None)
        await engine.entered.wait()
        assert engine.unfinished() > 0
        cancelled = await m.cancel(job["jobId"], "")
        return job["jobId"], cancelled, await result_of(m, job["jobId"], ""), await m.counts()

    job_id, cancelled, result, counts = asyncio.run(go())
    assert cancelled["status"] == "cancelled" and engine.unfinished() == 0
    assert isinstance(result, ServiceError) and result.status == 409 and "cancelled" in result.message
    assert counts == {"cancelled": 1, "tasks": 0}
    assert not m.files.fs.get_file_info(m.files.path(job_id, "input")).is_file


def test_limits_per_client_and_on_stored_bytes_then_ttl_expiry(tmp_path):
    engine, clock = GatedEngine(), Clock()
    m, _ = manager(tmp_path, engine, clock, max_active_per_client=1, max_stored_mb=0.05, ttl_s=60)
    small = text_pdf(1)

    async def go():
        first = await m.submit(decided({}), small, "pdf", "alice", None, client="alice@a")
        busy = await m.submit(decided({}), small, "pdf", "alice", None, client="alice@a")
        other = await m.submit(decided({}), small, "pdf", "bob", None, client="bob@b")
        full = await m.submit(decided({}), b"%PDF" + b"0" * 60_000, "pdf", "carol", None, client="carol@c")
        hidden = await m.status(first["jobId"], "bob")
        engine.gate.set()
        await until_finished(m, first["jobId"], "alice")
        await until_finished(m, other["jobId"], "bob")
        kept = await m.status(first["jobId"], "alice")
        clock.now += 61
        expired = await m.status(first["jobId"], "alice")
        return busy, other, full, hidden, kept, expired, m.sweep()

    busy, other, full, hidden, kept, expired, swept = asyncio.run(go())
    assert isinstance(busy, ServiceError) and busy.status == 429 and "max_active_per_client" in busy.message
    assert "of your jobs are queued or running" in busy.message
    assert other["status"] == "queued"
    assert isinstance(full, ServiceError) and full.status == 507 and "max_stored_mb" in full.message
    assert isinstance(hidden, ServiceError) and hidden.status == 404
    assert kept["status"] == "done"
    assert isinstance(expired, ServiceError) and expired.status == 404 and "ttl_s" in expired.message
    assert swept == 2 and JobFiles(str(tmp_path / "jobs")).records() == []


def test_without_a_key_each_address_has_its_own_limits_and_store_share(tmp_path):
    """All keyless callers are one owner; the limits count clients (key and address), so one
    address can neither make everyone else wait (429) nor hold the whole store."""
    from serve_app.jobs.manager import client_of

    flooder, neighbour = client_of("", "203.0.113.7"), client_of("", "198.51.100.9")
    page = text_pdf(1)
    size_mb = len(page) / 2**20

    async def flood(m, engine, jobs: int):
        mine = [await m.submit(decided({}), page, "pdf", "", None, client=flooder) for _ in range(jobs)]
        theirs = await m.submit(decided({}), page, "pdf", "", None, client=neighbour)
        engine.gate.set()
        return mine, theirs

    engine = GatedEngine()  # the flooder's jobs stay running: they count as active and hold their input
    m, _ = manager(tmp_path / "a", engine, max_active_per_client=2)
    mine, theirs = asyncio.run(flood(m, engine, 3))
    assert isinstance(mine[2], ServiceError) and mine[2].status == 429 and "max_active_per_client 2" in mine[2].message
    assert theirs["status"] in ("queued", "running")  # the neighbour is not refused for the flooder's jobs

    engine = GatedEngine()  # a share of 2.5 documents out of a store of 5
    m, _ = manager(tmp_path / "b", engine, max_stored_mb=5 * size_mb, max_client_share=0.5)
    mine, theirs = asyncio.run(flood(m, engine, 3))
    assert [isinstance(job, ServiceError) for job in mine] == [False, False, True]
    assert mine[2].status == 429 and "one client may hold" in mine[2].message and "jobs.max_client_share" in mine[2].message
    assert theirs["status"] in ("queued", "running")
    assert len({client_of("", "a"), client_of("k", "a"), client_of("", "b")}) == 3


def test_a_job_has_a_deadline_by_default_and_past_it_fails_with_the_fix(tmp_path):
    engine = GatedEngine()  # never answers: only the deadline ends the job
    m, _ = manager(tmp_path, engine, timeout_s=0.3, max_deadline_s=5000)
    config = AppConfig(jobs={"timeout_s": 0.3, "max_deadline_s": 5000})
    options = ParseOptions.from_request({"visualize": False, "textLayer": "off"}, config.option_defaults("job"))
    assert options.deadline_s == 0.3

    async def go():
        job = await m.submit(options, text_pdf(1), "pdf", "", None)
        return await until_finished(m, job["jobId"])

    status = asyncio.run(go())
    assert status["status"] == "failed" and status["errorCode"] == 504
    assert "deadlineSeconds 0.3" in status["errorMsg"] and "at most 5000, jobs.max_deadline_s" in status["errorMsg"]
    assert engine.unfinished() == 0  # the page's engine request was cancelled with the job


def test_a_bad_document_fails_its_job_with_the_sync_status(tmp_path):
    m, _ = manager(tmp_path)

    async def go():
        job = await m.submit(decided({"pageRanges": "5"}), text_pdf(2), "pdf", "", None)
        return await until_finished(m, job["jobId"]), await result_of(m, job["jobId"], "")

    status, body = asyncio.run(go())
    assert status["status"] == "failed" and body["errorCode"] == 422 and "outside 1-2" in body["errorMsg"]


def test_pages_lost_with_a_replica_make_the_job_run_again_for_them_not_fail(tmp_path, monkeypatch):
    """The lost-page rule of every HTTP path: a page lost with a stage replica is never a page
    result. A job, which has time, runs again for the pages not saved (here after no wait)."""
    from test_pipeline import Flaky

    monkeypatch.setattr("serve_app.jobs.runner.RETRY_LATER_S", 0)
    config = AppConfig(jobs={"store": str(tmp_path / "jobs")}, ingress={"page_retries": 1, "retry_backoff_s": [0.0]})
    flaky = Flaky("recognize", times=3)  # one page lost through its 2 tries, then a try that works
    m = JobManager(None, None, None, config, clock=Clock(), stages=flaky(stages(config)))

    async def go():
        job = await m.submit(decided({"visualize": False}), text_pdf(2), "pdf", "", None)
        return await until_finished(m, job["jobId"])

    status = asyncio.run(go())
    assert (status["status"], status["pagesDone"], status["failedPages"]) == ("done", 2, [])
    assert flaky.left == 0


def test_the_store_removes_only_its_own_recordless_job_directories(tmp_path, monkeypatch):
    """A job directory without a record (a submission cut short) goes; a directory that is not a
    job's (a shared store) and a record that cannot be read for a moment stay."""
    files = JobFiles(str(tmp_path / "jobs"))
    ours, foreign, flaky = "a" * 32, "someone-elses", "b" * 32
    files.write(files.path(ours, "input"), b"%PDF")
    files.write(files.path(foreign, "data"), b"theirs")
    files.save(JobRecord(job_id=flaky, log_id=flaky, owner=""))
    real_read = files.read

    def read(path):
        if flaky in path:
            raise OSError("the store failed for a moment")
        return real_read(path)

    monkeypatch.setattr(files, "read", read)
    assert files.records() == []
    left = {p.name for p in (tmp_path / "jobs").iterdir()}
    assert left == {foreign, flaky}


def test_a_finished_job_keeps_its_result_not_its_input(tmp_path):
    m, _ = manager(tmp_path)

    async def go():
        job = await m.submit(decided({"visualize": False}), text_pdf(2), "pdf", "", None)
        await until_finished(m, job["jobId"], "")
        return job["jobId"], await m.status(job["jobId"], "")

    job_id, status = asyncio.run(go())
    assert status["status"] == "done"
    assert not m.files.exists(m.files.path(job_id, "input")) and m.files.exists(m.files.path(job_id, "result.json"))
