"""HTTP routes only: HTTP ⇄ protocol models, the envelope, status codes. A document's life is the
pipeline's (``serve_app/pipeline``); the Serve deployment is made in ``app.py``."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import time
import uuid

from fastapi import Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import ValidationError

from serve_app import metrics
from serve_app.assemble import assemble_document, page_from_pruned
from serve_app.config import AppConfig
from serve_app.errors import RETRY_SOON_S, ServiceError, service_error
from serve_app.http import answer, api, envelope, error_answer, request_schema
from serve_app.inputs import load_file
from serve_app.jobs.manager import owner_of
from serve_app.jobs.routes import JobRoutes
from serve_app.options import ParseOptions, RestructureOptions, describe
from serve_app.pipeline import DocumentPipeline, OpenedDocument, ServeStages, data_info
from serve_app.protocol import InferRequest, InferResponse, RestructureRequest, RestructureResponse, envelope_body
from serve_app.respond import document_entries, text_entry
from serve_app.streaming import encode, media_type, page_events, stream_format
from serve_app.ui.routes import UiRoutes

log = logging.getLogger("serve_app")


class Ingress(JobRoutes, UiRoutes):
    """The API's replica: authentication, limits, backpressure, deadlines; parsing by handle."""

    def __init__(self, renderer, layout, recognizer, config: AppConfig):
        self.config = config
        self.pipeline = DocumentPipeline.for_app(ServeStages(renderer, layout, recognizer), config)
        self.handles = {"renderer": renderer, "layout": layout, "recognizer": recognizer}
        log.info("pipeline: %s", config.pipeline_report())
        self.slots = asyncio.Semaphore(config.ingress.max_concurrent_documents)
        self.waiting = 0
        self.body_bytes = 0  # of the request bodies being read and parsed now

    # -- plumbing ----------------------------------------------------------------------------
    def _authorize(self, request: Request) -> str:
        """The caller's owner id (a hash of its API key; jobs are visible to their owner only)."""
        key = self.config.ingress.api_key
        given = request.headers.get("authorization", "").encode()
        if key and not hmac.compare_digest(given, f"Bearer {key}".encode()):  # no timing hint of the key
            raise Unauthorized()
        return owner_of(key)

    async def _body(self, request: Request, model, log_id: str):
        cfg = self.config.ingress
        self._authorize(request)
        limit = int(cfg.max_body_mb * 2**20)
        too_large = ServiceError(413, f"the request body exceeds {cfg.max_body_mb:g} MB (ingress.max_body_mb); send a "
                                 "URL or split the document")
        if int(request.headers.get("content-length") or 0) > limit:
            raise too_large
        budget, chunks, size, held = int(cfg.bodies_in_flight_mb * 2**20), [], 0, 0
        try:
            async for chunk in request.stream():  # counted as it arrives: a chunked body has no Content-Length
                size += len(chunk)
                if size > limit:
                    raise too_large
                if self.body_bytes + len(chunk) > budget:
                    metrics.count("errors", kind="overloaded")
                    raise ServiceError(503, f"the server is receiving {self.body_bytes / 2**20:.0f} MB of request bodies "
                                       f"already (ingress.bodies_in_flight_mb {cfg.bodies_in_flight_mb:g}); retry "
                                       "shortly", RETRY_SOON_S)
                self.body_bytes += len(chunk)
                held += len(chunk)
                chunks.append(chunk)
            body = b"".join(chunks)
            chunks.clear()
            try:
                return model.model_validate_json(body)
            except ValidationError as exc:
                raise ServiceError(422, describe(exc)) from None
        finally:  # the budget counts a body until it is parsed (or refused)
            self.body_bytes -= held

    def _check_busy(self) -> None:
        cfg = self.config.ingress
        if self.slots.locked() and self.waiting >= cfg.max_waiting_documents:
            metrics.count("errors", kind="overloaded")
            raise ServiceError(429, f"the server is busy ({cfg.max_concurrent_documents} documents in progress, "
                               f"{self.waiting} waiting); retry later", RETRY_SOON_S)

    @contextlib.asynccontextmanager
    async def _slot(self):
        """Backpressure around one document: 429 with Retry-After when too many are waiting."""
        cfg = self.config.ingress
        self._check_busy()
        self.waiting += 1
        metrics.gauge("waiting", self.waiting)
        try:
            await self.slots.acquire()
        finally:  # also when the client goes away while waiting
            self.waiting -= 1
            metrics.gauge("waiting", self.waiting)
        metrics.gauge("in_flight", cfg.max_concurrent_documents - self.slots._value)
        try:
            yield
        finally:
            self.slots.release()
            metrics.gauge("in_flight", cfg.max_concurrent_documents - self.slots._value)

    async def _document(self, req: InferRequest, path: str = "call") -> tuple[ParseOptions, bytes, str]:
        """The request's options (decided for ``path``: the blocking call or a job) and file (422, or
        the file's own status, on a problem)."""
        options = ParseOptions.from_request(req, self.config.option_defaults(path))
        data, kind = await load_file(req.file, req.fileType, self.config.ingress)
        return options, data, kind

    async def _open(self, data: bytes, kind: str, options: ParseOptions) -> OpenedDocument:
        try:
            return await self.pipeline.open(data, kind, options)
        except Exception as exc:  # noqa: BLE001 - the document's problem (422) or the stages' (503)
            raise service_error(exc) from None

    # -- routes ------------------------------------------------------------------------------
    @api.post("/layout-parsing", operation_id="infer", openapi_extra=request_schema(InferRequest),
              response_model=None, responses={200: {"model": InferResponse}})
    async def infer(self, request: Request) -> Response:
        """The whole document as one JSON envelope; with `Accept: application/x-ndjson` or
        `text/event-stream`, its pages streamed as they finish (see ``streaming.py``)."""
        log_id = str(uuid.uuid4())
        start = time.perf_counter()
        fmt = stream_format(request.headers.get("accept"))
        try:
            req = await self._body(request, InferRequest, log_id)
            log_id = req.logId or log_id
            if fmt:
                return await self._stream(req, log_id, fmt)
            async with self._slot():
                result = await self._infer(req, log_id)
            metrics.count("documents", status="ok")
            return answer(log_id, result)
        except Exception as exc:  # noqa: BLE001 - the envelope, never a stack trace
            error = service_error(exc)
            metrics.count("documents", status=str(error.status))
            if error.status == 500:
                log.exception("[%s] internal error", log_id)
            else:
                log.info("[%s] %s %s", log_id, error.status, error.message)
            return error_answer(log_id, error)
        finally:
            metrics.observe("request_seconds", time.perf_counter() - start)

    async def _infer(self, req: InferRequest, log_id: str) -> dict:
        options, data, kind = await self._document(req)
        doc = await self.pipeline.run(await self._open(data, kind, options), options, log_id)
        return {"layoutParsingResults": document_entries(doc.pages, options), "dataInfo": data_info(doc)}

    async def _stream(self, req: InferRequest, log_id: str, fmt: str) -> StreamingResponse:
        self._check_busy()
        options, data, kind = await self._document(req)
        doc = await self._open(data, kind, options)

        async def events():
            try:
                async with self._slot():
                    async for event in page_events(self.pipeline, doc, options, log_id, fmt):
                        yield event
                metrics.count("documents", status="ok")
            except ServiceError as exc:  # busy by the time the stream started
                metrics.count("documents", status=str(exc.status))
                yield encode(fmt, "error", envelope_body(log_id, exc.status, exc.message))

        return StreamingResponse(events(), media_type=media_type(fmt),
                                 headers={"Cache-Control": "no-cache", "X-Log-Id": log_id})

    @api.post("/restructure-pages", operation_id="restructurePages", openapi_extra=request_schema(RestructureRequest),
              response_model=None, responses={200: {"model": RestructureResponse}})
    async def restructure(self, request: Request) -> JSONResponse:
        """The document step (``assemble_document``) on pages read back from their ``prunedResult``."""
        log_id = str(uuid.uuid4())
        try:
            req = await self._body(request, RestructureRequest, log_id)
            log_id = req.logId or log_id
            try:  # everything that reads the pages; off the event loop (a large document is work)
                results = await asyncio.to_thread(restructure_answer, req)
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                raise ServiceError(422, f"pages[].prunedResult is not a layout-parsing prunedResult: "
                                        f"{type(exc).__name__}: {str(exc)[:200]}") from None
            return envelope(log_id, result={"layoutParsingResults": results})
        except ServiceError as exc:
            return error_answer(log_id, exc)

    @api.get("/health", operation_id="health")
    async def health(self) -> JSONResponse:
        return envelope(str(uuid.uuid4()), message="Healthy", result=self.config.pipeline_report())

    @api.get("/health/ready", operation_id="ready")
    async def ready(self) -> JSONResponse:
        """Green only when every stage answers (the recognizer's engine included)."""
        log_id = str(uuid.uuid4())
        problems = []
        for name, handle in self.handles.items():
            try:
                await asyncio.wait_for(handle.ready.remote(), 10)
            except Exception as exc:  # noqa: BLE001 - any failure means not ready
                log.warning("[%s] %s not ready: %s: %s", log_id, name, type(exc).__name__, exc)
                problems.append(name)  # the reason is in the log, not in an open route's answer
        if problems:
            return envelope(log_id, 503, "Not ready: " + ", ".join(problems), headers={"Retry-After": str(RETRY_SOON_S)})
        return envelope(log_id, message="Ready")


def restructure_answer(req: RestructureRequest) -> list[dict]:
    """``/restructure-pages``: the document step (``assemble_document``) on pages read back from
    their ``prunedResult``; an input it cannot read raises KeyError/TypeError/ValueError."""
    pages = [page_from_pruned(p.prunedResult, n) for n, p in enumerate(req.pages)]
    settings = req.pages[0].prunedResult.get("model_settings") or {}
    options = ParseOptions.from_report(settings, pretty=req.prettifyMarkdown,
                                       show_formula_number=req.showFormulaNumber).model_copy(update={
        "restructure": RestructureOptions(enabled=True, merge_tables=req.mergeTables,
                                          relevel_titles=req.relevelTitles, concatenate=req.concatenatePages)})
    images: dict[str, str] = {}
    for page in req.pages:
        images.update(page.markdownImages or {})
    return [text_entry(text, images if req.returnMarkdownImages else None) for text in assemble_document(pages, options)]


class Unauthorized(ServiceError):
    def __init__(self):
        super().__init__(401, "missing or wrong API key; send `Authorization: Bearer <key>`")

    @property
    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": "Bearer"}


__all__ = ["api", "Ingress"]
