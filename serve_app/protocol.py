"""Request and response models of the HTTP API, field for field as PaddleX's PaddleOCR-VL
serving schema (camelCase names), plus our additions (``pageRanges``, ``deadlineSeconds``, ``textLayer``)."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from deployments.layout.options import MergeMode


_LOG_ID = re.compile(r"[A-Za-z0-9_.-]{1,128}")


def _check_log_id(value: str) -> str:
    if not _LOG_ID.fullmatch(value):
        raise ValueError("must be 1 to 128 of A-Z a-z 0-9 _ . - (it goes into a header, every event and log line); "
                         "leave it out to get a generated one")
    return value


#: A caller's ``logId``: echoed in the ``X-Log-Id`` header, the answer and the logs, so it is short
#: and plain ASCII (a newline or a non-Latin-1 character would break the header).
LogId = Annotated[str, AfterValidator(_check_log_id)]


class InferRequest(BaseModel):
    """``POST /layout-parsing`` body. Only ``file`` is required. Types only: a field not sent is
    None, and ``ParseOptions.from_request`` checks the values (messages naming the field) and
    applies the defaults, which live in the options models (``serve_app/options.py``) only."""

    model_config = ConfigDict(extra="ignore")

    file: str = Field(..., description="http(s) URL or Base64 of a PDF or an image.")
    fileType: Optional[Literal[0, 1]] = Field(None, description="0 = PDF, 1 = image; inferred when absent.")
    useDocOrientationClassify: Optional[bool] = None
    useDocUnwarping: Optional[bool] = None
    useLayoutDetection: Optional[bool] = None
    useChartRecognition: Optional[bool] = None
    useSealRecognition: Optional[bool] = None
    useOcrForImageBlock: Optional[bool] = None
    layoutThreshold: Optional[Union[float, dict[int, float]]] = None
    layoutNms: Optional[bool] = None
    layoutUnclipRatio: Optional[Union[float, tuple[float, float], dict[int, tuple[float, float]]]] = None
    layoutMergeBboxesMode: Optional[Union[MergeMode, dict[int, MergeMode]]] = None
    layoutShapeMode: Optional[Literal["rect", "quad", "poly", "auto"]] = None
    promptLabel: Optional[str] = None
    formatBlockContent: Optional[bool] = None
    repetitionPenalty: Optional[float] = None
    temperature: Optional[float] = None
    topP: Optional[float] = None
    minPixels: Optional[int] = None
    maxPixels: Optional[int] = None
    maxNewTokens: Optional[int] = None
    mergeLayoutBlocks: Optional[bool] = None
    markdownIgnoreLabels: Optional[list[str]] = None
    vlmExtraArgs: Optional[dict[str, Any]] = None
    prettifyMarkdown: Optional[bool] = None
    showFormulaNumber: Optional[bool] = None
    restructurePages: Optional[bool] = None
    mergeTables: Optional[bool] = None
    relevelTitles: Optional[bool] = None
    visualize: Optional[bool] = None
    returnMarkdownImages: Optional[bool] = None
    outputFormats: Optional[list[str]] = None
    logId: Optional[LogId] = None
    pageRanges: Optional[str] = Field(None, description="Pages to parse, 1-based: '1-3,7'.")
    deadlineSeconds: Optional[float] = Field(None, allow_inf_nan=False, description="Deadline of this request (504 beyond).")
    textLayer: Optional[Literal["auto", "off", "prefer"]] = Field(
        None, description="A PDF's own text for text blocks: auto (the offline CPU engine uses it where it is "
        "good), off (always read pixels), prefer (also with the VLM engines: text blocks the layer covers skip "
        "the model; tables, formulas and charts still go to it).")


class RestructurePage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    prunedResult: dict[str, Any]
    markdownImages: Optional[dict[str, str]] = None


class RestructureRequest(BaseModel):
    """``POST /restructure-pages`` body."""

    model_config = ConfigDict(extra="ignore")

    pages: list[RestructurePage] = Field(..., min_length=1)
    mergeTables: bool = True
    relevelTitles: bool = True
    concatenatePages: bool = False
    prettifyMarkdown: bool = True
    showFormulaNumber: bool = False
    returnMarkdownImages: bool = True
    logId: Optional[LogId] = None


class MarkdownData(BaseModel):
    text: str
    images: Optional[dict[str, str]] = None


class PageErrorInfo(BaseModel):
    stage: str
    kind: str
    message: str


class LayoutParsingResult(BaseModel):
    prunedResult: dict[str, Any]
    markdown: MarkdownData
    outputImages: Optional[dict[str, str]] = None
    inputImage: Optional[str] = None
    status: Literal["ok", "failed"] = "ok"
    error: Optional[PageErrorInfo] = None


class InferResult(BaseModel):
    layoutParsingResults: list[LayoutParsingResult]
    dataInfo: dict[str, Any]


class RestructureResult(BaseModel):
    layoutParsingResults: list[dict[str, Any]]


class Envelope(BaseModel):
    """Every response: ``{logId, errorCode, errorMsg[, result]}`` (errorCode = HTTP status, 0 on success)."""

    logId: str
    errorCode: int = 0
    errorMsg: str = "Success"
    result: Optional[Any] = None


class InferResponse(Envelope):
    """``POST /layout-parsing`` on success (the OpenAPI schema of the answer)."""

    result: InferResult


class RestructureResponse(Envelope):
    """``POST /restructure-pages`` on success."""

    result: RestructureResult


def envelope_body(log_id: str, status: int = 0, message: str = "Success", result: Any = None) -> dict[str, Any]:
    """The envelope of every answer (the official API's ``Envelope``): ``{logId, errorCode,
    errorMsg[, result]}``, ``errorCode`` being the HTTP status (0 for success). The one builder:
    routes, streamed events, jobs and the proxy's answer for a lost API replica all use it."""
    body = {"logId": log_id, "errorCode": status, "errorMsg": message}
    if result is not None:
        body["result"] = result
    return body
