"""How the job manager runs one job: the pipeline over the stages, with the job store's commit
protocol (``store.py``): each page's entry written as the page finishes, then ``result.json``,
then the record says ``done``, then the page files go. A manager killed at any step finishes the
job with every page once: after ``result.json`` it only finishes the bookkeeping; before, it
parses the pages not written yet."""

from __future__ import annotations

import asyncio
import logging
import time
from serve_app.crashpoints import reached
from serve_app.errors import RETRY_LATER_S, ServiceError, service_error
from serve_app.jobs.store import JobRecord
from serve_app.options import ParseOptions
from serve_app.pipeline import OpenedDocument, ParsedDocument, data_info
from serve_app.protocol import InferRequest
from serve_app.respond import PageOutput, document_entries, finished_page_entry, saved_page_output

log = logging.getLogger("serve_app")
#: How often a running job's record (its progress) is rewritten; each finished page is written at once.
PROGRESS_SAVE_S = 2.0


class JobRunner:
    """The running half of ``JobManager`` (it needs ``files``, ``pipeline``, ``config``, ``slots``,
    ``tasks`` and ``clock``)."""

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
        except Exception:  # noqa: BLE001 - the job fails, the manager goes on
            log.exception("[%s] job %s failed", record.log_id, record.job_id)  # the details: here, not in the record
            self._finish(record, "failed", 500, f"internal error; it is logged with logId {record.log_id}")
        finally:
            self.tasks.pop(record.job_id, None)

    async def _parse(self, record: JobRecord) -> None:
        files, job_id = self.files, record.job_id
        if await asyncio.to_thread(files.exists, files.path(job_id, "result.json")):  # written before a restart
            return await self._done(record, await asyncio.to_thread(files.saved_pages, job_id))
        options = self.options_of(record)
        saved = await asyncio.to_thread(files.saved_pages, job_id)
        outputs: dict[int, PageOutput] = {}  # restructuring needs the pages themselves; otherwise entries suffice
        try:
            doc, parsed = await self._parse_pages(record, options, saved, outputs)
        except ServiceError as exc:
            return self._finish(record, "failed", exc.status, self._failure(exc, options))
        if options.restructure.enabled:
            pages = [outputs.get(i) or saved_page_output(saved[i], i) for i in doc.page_indices]
            entries = document_entries(pages, options)
        else:
            entries = [saved[i] for i in doc.page_indices]
        result = {"layoutParsingResults": entries, "dataInfo": data_info(parsed)}
        await asyncio.to_thread(files.write_json, files.path(job_id, "result.json"), result, "jobs:result")
        await self._done(record, saved)

    def options_of(self, record: JobRecord) -> ParseOptions:
        """The options the job was submitted with (decided then); a job stored by an earlier
        version has only its request, decided now."""
        if record.decided is not None:
            return ParseOptions.model_validate(record.decided)
        return ParseOptions.from_request(InferRequest(file="", **record.options), self.config.option_defaults("job"))

    async def _parse_pages(self, record: JobRecord, options: ParseOptions, saved: dict[int, dict],
                           outputs: dict[int, PageOutput]) -> tuple[OpenedDocument, ParsedDocument]:
        """The pages not saved yet, each saved as it finishes. Pages lost with a stage replica (503)
        are tried again after ``RETRY_LATER_S``, ``jobs.unavailable_retries`` times, keeping those
        saved: a job outlasts a replica's restart instead of failing with it."""
        files, job_id = self.files, record.job_id
        data = await asyncio.to_thread(files.read, files.path(job_id, "input"))
        last_save = [time.monotonic()]

        async def on_page(out: PageOutput) -> None:
            entry, index = finished_page_entry(out, options), out.result.page_index
            record.stored_bytes += await asyncio.to_thread(files.write_json, files.page_path(job_id, index), entry,
                                                           "jobs:page")
            if options.restructure.enabled:
                outputs[index] = out
            saved[index] = entry
            record.pages_done = len(saved)
            if entry["status"] == "failed":
                record.failed_pages = sorted({*record.failed_pages, index})
            if time.monotonic() - last_save[0] >= PROGRESS_SAVE_S:  # the pages are the durable part
                last_save[0] = time.monotonic()
                await asyncio.to_thread(files.save, record)

        tries_left = self.config.jobs.unavailable_retries
        while True:
            try:
                doc = await self.pipeline.open(data, record.kind, options)
                record.pages_total, record.pages_done = len(doc.page_indices), len(saved)
                record.failed_pages = sorted(i for i, e in saved.items() if e["status"] == "failed")
                self.files.save(record)
                return doc, await self.pipeline.run(doc, options, record.log_id, on_page, frozenset(saved))
            except Exception as exc:  # noqa: BLE001 - the job's answer; 503 is tried again
                error = service_error(exc)
                if error.status != 503 or not tries_left:
                    raise error from exc
            tries_left -= 1
            log.warning("[%s] job %s: %s; trying again in %d s", record.log_id, job_id, error.message, RETRY_LATER_S)
            await asyncio.sleep(RETRY_LATER_S)

    def _failure(self, error: ServiceError, options: ParseOptions) -> str:
        """The job's ``errorMsg``, with the fix a job's submitter can apply."""
        if error.status == 504:
            return (f"the job was not done within deadlineSeconds {options.deadline_s:g}; submit it again with a "
                    f"larger deadlineSeconds (at most {self.config.jobs.max_deadline_s:g}, jobs.max_deadline_s) or "
                    "fewer pages (pageRanges)")
        if error.status == 503:
            return f"{error.message}; submit the job again"
        return error.message

    async def _done(self, record: JobRecord, saved: dict[int, dict]) -> None:
        """``result.json`` is in place: the record says done (then ``_prune`` removes the page files)."""
        files, job_id = self.files, record.job_id
        record.stored_bytes = await asyncio.to_thread(lambda: files.fs.get_file_info(files.path(job_id, "result.json")).size)
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
        """A finished job keeps only what its result needs: a done one its result, a failed or
        cancelled one its record; its input goes (a finished document must not hold the store's
        budget for ``ttl_s``). Also run for every finished job when a manager starts: one killed
        between a job's record and this step left its pages or input."""
        self.files.remove_pages(record.job_id)
        try:
            self.files.fs.delete_file(self._input(record))
        except (FileNotFoundError, OSError):
            pass
        if record.status in ("failed", "cancelled") and record.stored_bytes:
            record.stored_bytes = 0
            self.files.save(record)

    def _input(self, record: JobRecord) -> str:
        return self.files.path(record.job_id, "input")
