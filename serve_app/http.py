"""The FastAPI app every route is declared on, the error envelope and the error type of the routes."""

from __future__ import annotations

from typing import Any, Optional

from fastapi import FastAPI
from fastapi.responses import JSONResponse

api = FastAPI(title="PaddleOCR-VL layout parsing", version="0.1.0",
              description="PaddleX-compatible `/layout-parsing` on Ray Serve, with async jobs (`/jobs`), streamed "
              "pages (`Accept: application/x-ndjson` or `text/event-stream`) and a web page (`/ui`). Errors use the "
              "envelope `{logId, errorCode, errorMsg}` with errorCode = HTTP status.")


RETRY_AFTER_S = "5"  # the Retry-After of a 429, 503 or 504: seconds the client should wait


class ApiError(Exception):
    def __init__(self, status: int, message: str, headers: Optional[dict] = None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


def envelope(log_id: str, status: int = 0, message: str = "Success", result: Any = None, headers=None) -> JSONResponse:
    body: dict[str, Any] = {"logId": log_id, "errorCode": status, "errorMsg": message}
    if result is not None:
        body["result"] = result
    return JSONResponse(body, status_code=status or 200, headers=headers)


def request_schema(model) -> dict:
    """OpenAPI ``requestBody`` for a route that reads its body itself (to map errors to the envelope)."""
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": model.model_json_schema()}}}}
