"""HTTP routes of the async job API (a mixin of the ingress; the work is the job manager's):

    POST   /jobs/layout-parsing   the /layout-parsing body → 202, result {jobId, status, …}
    GET    /jobs/{id}             status: queued|running|done|failed|cancelled, pagesDone/pagesTotal,
                                  failedPages, elapsedSeconds, etaSeconds
    GET    /jobs/{id}/result      the envelope /layout-parsing would have answered (409 until done)
    DELETE /jobs/{id}             cancel a queued or running job; delete a finished one
"""

from __future__ import annotations

import uuid

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from serve_app.errors import RETRY_SOON_S, ServiceError
from serve_app.http import ANSWER_CHUNK_BYTES, api, envelope, error_answer, request_schema, stored_answer
from serve_app.jobs.manager import client_of, get_or_create
from serve_app.protocol import InferRequest


class JobRoutes:
    """Needs the ingress's ``config``, ``handles``, ``_authorize``, ``_body`` and ``_document``."""

    _manager = None

    async def _jobs(self, method: str, *args):
        """Call the job manager (found or created by name); a manager that is gone for good is
        created again once (a restarting one is waited for by Ray)."""
        from ray.exceptions import ActorDiedError, ActorUnavailableError

        for attempt in (1, 2):
            if self._manager is None:
                h = self.handles
                self._manager = get_or_create(h["renderer"], h["layout"], h["recognizer"], self.config)
            try:
                answer = await getattr(self._manager, method).remote(*args)
                break
            except (ActorDiedError, ActorUnavailableError):
                self._manager = None
                if attempt == 2:
                    raise ServiceError(503, "the job manager is restarting; retry shortly", RETRY_SOON_S) from None
        if isinstance(answer, ServiceError):
            raise answer
        return answer

    @api.post("/jobs/layout-parsing", operation_id="submitJob", openapi_extra=request_schema(InferRequest),
              response_model=None, status_code=202)
    async def submit_job(self, request: Request) -> JSONResponse:
        log_id = str(uuid.uuid4())
        try:
            req = await self._body(request, InferRequest, log_id)
            owner = self._authorize(request)
            options, data, kind = await self._document(req, "job")  # decided now, kept with the job
            # the job's id, chosen here: a submission repeated after the manager died in it is the same job
            client = client_of(owner, request.client.host if request.client else "")
            job = await self._jobs("submit", options, data, kind, owner, req.logId, uuid.uuid4().hex, client)
            response = envelope(job["logId"], result=job, headers={"Location": f"jobs/{job['jobId']}"})
            response.status_code = 202
            return response
        except ServiceError as exc:
            return error_answer(log_id, exc)

    async def _job_answer(self, method: str, job_id: str, request: Request) -> Response:
        """GET/DELETE of one job: the manager's answer in the envelope, or the refusal."""
        try:
            owner = self._authorize(request)
            answer = await self._jobs(method, job_id, owner)
        except ServiceError as exc:
            return error_answer(str(uuid.uuid4()), exc)
        if method != "result":
            return envelope(answer["logId"], result=answer)
        if answer.pop("resultBytes", None) is None:  # the job's error: the envelope /layout-parsing answered
            return JSONResponse(answer, status_code=answer["errorCode"] or 200)
        stream = self._manager.result_pieces.options(num_returns="streaming").remote(job_id, owner, ANSWER_CHUNK_BYTES)
        return await stored_answer(answer, _awaited(stream))

    @api.get("/jobs/{job_id}", operation_id="jobStatus")
    async def job_status(self, job_id: str, request: Request) -> JSONResponse:
        return await self._job_answer("status", job_id, request)

    @api.get("/jobs/{job_id}/result", operation_id="jobResult")
    async def job_result(self, job_id: str, request: Request) -> Response:
        """The envelope ``POST /layout-parsing`` would have answered; a long result streamed in pieces."""
        return await self._job_answer("result", job_id, request)

    @api.delete("/jobs/{job_id}", operation_id="cancelJob")
    async def cancel_job(self, job_id: str, request: Request) -> JSONResponse:
        return await self._job_answer("cancel", job_id, request)


async def _awaited(refs):
    """The values of a Ray streaming generator's object refs, in order."""
    async for ref in refs:
        yield await ref
