"""The FastAPI app every route is declared on, and the answers it sends: an envelope (a result or a
``ServiceError``), and a long result in pieces."""

from __future__ import annotations

import itertools
import json
import logging
import uuid
from typing import Any, AsyncIterator, Iterator

from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response, StreamingResponse

from serve_app.errors import ServiceError
from serve_app.protocol import envelope_body

api = FastAPI(title="PaddleOCR-VL layout parsing", version="0.1.0",
              description="PaddleX-compatible `/layout-parsing` on Ray Serve, with async jobs (`/jobs`), streamed "
              "pages (`Accept: application/x-ndjson` or `text/event-stream`) and a web page (`/ui`). Errors use the "
              "envelope `{logId, errorCode, errorMsg}` with errorCode = HTTP status.")


@api.exception_handler(Exception)
async def _unexpected(request, exc: Exception) -> JSONResponse:
    """Whatever a route did not answer itself still gets the envelope (500), never a bare error
    page; the exception goes to the log under the answer's logId, not to the caller."""
    log_id = str(uuid.uuid4())
    logging.getLogger("serve_app").error("[%s] %s %s failed", log_id, request.method, request.url.path, exc_info=exc)
    return envelope(log_id, 500, f"internal error; it is logged with logId {log_id}")


#: A success answer larger than this goes out in pieces of about this size (chunked transfer), so
#: that the replica never holds its JSON whole: a 1,000-page answer with images is ~0.5 GB.
ANSWER_CHUNK_BYTES = 4 * 2**20


def envelope(log_id: str, status: int = 0, message: str = "Success", result: Any = None, headers=None) -> JSONResponse:
    return JSONResponse(envelope_body(log_id, status, message, result), status_code=status or 200, headers=headers)


def error_answer(log_id: str, error: ServiceError) -> JSONResponse:
    """A ``ServiceError`` as its envelope, status and ``Retry-After``."""
    return envelope(log_id, error.status, error.message, headers=error.headers)


def request_schema(model) -> dict:
    """OpenAPI ``requestBody`` for a route that reads its body itself (to map errors to the envelope)."""
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": model.model_json_schema()}}}}


def answer(log_id: str, result: dict[str, Any], listed: str = "layoutParsingResults",
           chunk_bytes: int = ANSWER_CHUNK_BYTES) -> Response:
    """``envelope(log_id, result=result)``, byte for byte, encoded ``result[listed]`` item by item:
    an answer within ``chunk_bytes`` is one body (with its Content-Length); a larger one is streamed
    in pieces of about ``chunk_bytes``, encoded as they are sent (off the event loop), so the
    replica holds one piece of the JSON at a time, not the whole of it and its bytes besides."""
    chunks = _chunks(_envelope_pieces(log_id, result, listed), chunk_bytes)
    first = next(chunks)
    second = next(chunks, None)
    if second is None:
        return Response(first, media_type="application/json")
    return StreamingResponse(itertools.chain((first, second), chunks), media_type="application/json")


async def stored_answer(head: dict[str, Any], pieces: AsyncIterator[bytes]) -> Response:
    """The envelope ``head`` with a stored result's JSON as ``result``, as :func:`answer` sends it:
    one body when the result is one piece, else streamed piece by piece as ``pieces`` yields them."""
    prefix, first = _json(head)[:-1] + b',"result":', await anext(pieces, b"")
    second = await anext(pieces, None)
    if second is None:
        return Response(prefix + first + b"}", media_type="application/json")

    async def body() -> AsyncIterator[bytes]:
        yield prefix + first
        yield second
        async for piece in pieces:
            yield piece
        yield b"}"

    return StreamingResponse(body(), media_type="application/json")


def _json(value: Any) -> bytes:
    """As JSONResponse encodes (compact, UTF-8, no NaN)."""
    return json.dumps(value, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")).encode("utf-8")


def _envelope_pieces(log_id: str, result: dict[str, Any], listed: str) -> Iterator[bytes]:
    yield _json(envelope_body(log_id))[:-1] + b',"result":{'
    for n, (key, value) in enumerate(result.items()):
        yield (b"," if n else b"") + _json(key) + b":"
        if key != listed:
            yield _json(value)
            continue
        yield b"["
        for i, item in enumerate(value):
            yield (b"," if i else b"") + _json(item)
        yield b"]"
    yield b"}}"


def _chunks(pieces: Iterator[bytes], size: int) -> Iterator[bytes]:
    buffer = bytearray()
    for piece in pieces:
        buffer += piece
        if len(buffer) >= size:
            yield bytes(buffer)
            buffer.clear()
    if buffer:
        yield bytes(buffer)
