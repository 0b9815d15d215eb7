"""``ParseOptions``: every per-request option, decided once, read by planning and assembly.

Built from the HTTP request (:meth:`ParseOptions.from_request`, which owns all validation and its
messages) or, in a bulk job, from the same API-named options given as flags or config. The
``model_settings`` of each page is :meth:`ParseOptions.report`: output only, never read back.
"""

from __future__ import annotations

import re
import reprlib
from typing import Any, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from deployments.datamodel import PageResult
from deployments.labels import PROMPT_LABELS, V1_MARKDOWN_IGNORE_LABELS
from deployments.layout.options import LayoutOptions
from deployments.recognizer.options import PIXEL_KINDS, PlanOptions
from deployments.recognizer.recognizer import PageRequest, SamplingOptions, TextLayerMode
from deployments.orientation import UNAVAILABLE as ORIENTATION_UNAVAILABLE
from deployments.orientation import available as orientation_available
from deployments.renderer import check_page_ranges
from serve_app.errors import ServiceError, nearest
from serve_app.protocol import InferRequest

_FROZEN = ConfigDict(extra="forbid", frozen=True)


class OptionError(ServiceError, ValueError):
    """A request option this server cannot honour; the message names the option and the fix (422)."""

    def __init__(self, message: str):
        super().__init__(422, message)

    def __reduce__(self):
        return type(self), (self.message,)


class MarkdownOptions(BaseModel):
    """How a page's blocks are written as Markdown (and as ``block_content``)."""

    model_config = _FROZEN

    pretty: bool = Field(True, description="prettifyMarkdown: centred HTML for images, tables, titles.")
    show_formula_number: bool = Field(False, description="showFormulaNumber: \\tag formula numbers.")
    ignore_labels: Optional[tuple[str, ...]] = Field(
        None, description="markdownIgnoreLabels: labels left out of the Markdown (None: the official default).")
    format_block_content: bool = Field(False, description="formatBlockContent: block_content as Markdown.")

    @property
    def ignored(self) -> tuple[str, ...]:
        return V1_MARKDOWN_IGNORE_LABELS if self.ignore_labels is None else self.ignore_labels


class RestructureOptions(BaseModel):
    """Document-level restructuring (``restructurePages``, ``mergeTables``, ``relevelTitles``)."""

    model_config = _FROZEN

    enabled: bool = False
    merge_tables: bool = True
    relevel_titles: bool = True
    concatenate: bool = False


class OptionDefaults(BaseModel):
    """What a request's options are decided over: the stage configs' options and the path's own
    defaults (``AppConfig.option_defaults(path)``: the blocking call, jobs, bulk)."""

    model_config = _FROZEN

    layout: LayoutOptions = Field(default_factory=LayoutOptions)
    plan: PlanOptions = Field(default_factory=PlanOptions)
    visualize: bool = Field(True, description="`visualize` when the request does not say (ingress.visualize).")
    deadline_s: Optional[float] = Field(None, gt=0, description="`deadlineSeconds` when the request does not say.")
    max_deadline: Optional[tuple[float, str]] = Field(None, description="The largest `deadlineSeconds` a request may "
                                                      "ask for, and the setting that says so (None: no cap).")


class ParseOptions(BaseModel):
    """Everything one document is parsed with besides the stage configs."""

    model_config = _FROZEN

    layout: LayoutOptions = Field(default_factory=LayoutOptions)
    use_layout: bool = Field(True, description="useLayoutDetection; off: the whole page is one block.")
    prompt_label: str = Field("ocr", description="promptLabel: the block label when layout detection is off.")
    plan: PlanOptions = Field(default_factory=PlanOptions)
    sampling: SamplingOptions = Field(default_factory=SamplingOptions)
    markdown: MarkdownOptions = Field(default_factory=MarkdownOptions)
    restructure: RestructureOptions = Field(default_factory=RestructureOptions)
    visualize: bool = Field(True, description="Return the layout visualisations and the input image.")
    markdown_images: bool = Field(True, description="returnMarkdownImages: Base64 crops with the Markdown.")
    page_ranges: Optional[str] = Field(None, description="pageRanges: 1-based pages to parse, '1-3,7'.")
    deadline_s: Optional[float] = Field(
        None, gt=0, description="deadlineSeconds: the longest the whole document may take, from the start of its "
        "parsing; each page's recognition gets the time left (None: no limit; the blocking and streamed calls "
        "default to ingress.timeout_s, jobs to jobs.timeout_s).")
    text_layer: TextLayerMode = Field("auto", description="textLayer: a PDF's own text for text blocks.")
    orient: bool = Field(False, description="useDocOrientationClassify: turn pages upright before layout.")

    @field_validator("prompt_label")
    @classmethod
    def _prompt_label(cls, value: str) -> str:
        if value not in PROMPT_LABELS:
            raise ValueError(f"must be one of {list(PROMPT_LABELS)}, got {value!r}")
        return value

    @classmethod
    def from_request(cls, req: Union[InferRequest, dict[str, Any]],
                     defaults: Optional[OptionDefaults] = None) -> "ParseOptions":
        """The options of one request (API field names) over ``defaults``; the one place an
        option is decided and checked: every problem raises :class:`OptionError` naming it. A dict
        (a bulk job's options) must name API options only: unlike an HTTP body, whose unknown
        fields are ignored as the official API does, a typo there is an error."""
        defaults = defaults or OptionDefaults()
        if isinstance(req, dict):
            for name in req:
                if name not in InferRequest.model_fields:
                    raise OptionError(f"{name}: not an option of the request{nearest(name, list(InferRequest.model_fields))}")
            try:
                req = InferRequest.model_validate({"file": "", **req})
            except ValidationError as exc:
                raise OptionError(describe(exc)) from None
        _check_supported(req)
        _check_deadline(req.deadlineSeconds, defaults.max_deadline)
        return _build(cls, {"prompt_label": "promptLabel", "deadline_s": "deadlineSeconds"}, **_given(
            layout=_layout(req, defaults.layout), use_layout=req.useLayoutDetection, plan=_plan(req, defaults.plan),
            prompt_label=req.promptLabel and req.promptLabel.lower(),
            sampling=_build(SamplingOptions, _SAMPLING, **_sampling(req)), markdown=_markdown(req),
            restructure=RestructureOptions(**_given(enabled=req.restructurePages, merge_tables=req.mergeTables,
                                                    relevel_titles=req.relevelTitles)),
            visualize=defaults.visualize if req.visualize is None else req.visualize,
            markdown_images=req.returnMarkdownImages, page_ranges=_page_ranges(req.pageRanges),
            deadline_s=defaults.deadline_s if req.deadlineSeconds is None else req.deadlineSeconds,
            text_layer=req.textLayer, orient=req.useDocOrientationClassify))

    def page_request(self, timeout_s: Optional[float] = None) -> PageRequest:
        """What the recognizer reads: planning, sampling and the page's remaining deadline."""
        return PageRequest(plan=self.plan, sampling=self.sampling, timeout_s=timeout_s, text_layer=self.text_layer)

    def report(self, page: Optional[PageResult] = None) -> dict[str, Any]:
        """``model_settings`` as PaddleX reports it (plus the kinds this page kept as images)."""
        settings: dict[str, Any] = {
            "use_doc_preprocessor": self.orient,
            "use_layout_detection": self.use_layout,
            "use_chart_recognition": self.plan.use_chart_recognition,
            "use_seal_recognition": self.plan.use_seal_recognition,
            "use_ocr_for_image_block": self.plan.use_ocr_for_image_block,
            "format_block_content": self.markdown.format_block_content,
            "merge_layout_blocks": self.plan.merge_layout_blocks,
            "markdown_ignore_labels": list(self.markdown.ignored),
            "return_layout_polygon_points": self.layout.shape_mode != "rect",
        }
        if page is not None and page.recognized_as_images:
            settings["recognized_as_images"] = list(page.recognized_as_images)
        return settings

    @classmethod
    def from_report(cls, settings: dict[str, Any], **markdown: Any) -> "ParseOptions":
        """The options a ``prunedResult`` was made with (``/restructure-pages`` has only that)."""
        plan = PlanOptions(**{k: bool(settings[k]) for k in ("use_chart_recognition", "use_seal_recognition",
                                                             "use_ocr_for_image_block", "merge_layout_blocks")
                              if k in settings})
        ignore = settings.get("markdown_ignore_labels")
        return cls(use_layout=bool(settings.get("use_layout_detection", True)), plan=plan,
                   orient=bool(settings.get("use_doc_preprocessor")),
                   layout=LayoutOptions(shape_mode="auto" if settings.get("return_layout_polygon_points", True)
                                        else "rect"),
                   markdown=MarkdownOptions(ignore_labels=None if ignore is None else tuple(ignore),
                                            format_block_content=bool(settings.get("format_block_content")),
                                            **markdown))


# API field names of the stage options' fields, for messages.
_LAYOUT = {"threshold": "layoutThreshold", "nms": "layoutNms", "unclip_ratio": "layoutUnclipRatio",
           "merge_bboxes_mode": "layoutMergeBboxesMode", "shape_mode": "layoutShapeMode"}
_PLAN = {"use_chart_recognition": "useChartRecognition", "use_seal_recognition": "useSealRecognition",
         "use_ocr_for_image_block": "useOcrForImageBlock", "merge_layout_blocks": "mergeLayoutBlocks",
         "min_pixels": "minPixels", "max_pixels": "maxPixels", "kind_pixels": "vlmExtraArgs"}
_SAMPLING = {"temperature": "temperature", "top_p": "topP", "repetition_penalty": "repetitionPenalty",
             "max_new_tokens": "maxNewTokens"}


def _given(**values) -> dict[str, Any]:
    """The values a request sets (None: not sent, so the options model's own default applies: each
    default lives in one place, the options models, not in the request model too)."""
    return {k: v for k, v in values.items() if v is not None}


def _markdown(req: InferRequest) -> MarkdownOptions:
    ignore = req.markdownIgnoreLabels
    return MarkdownOptions(**_given(pretty=req.prettifyMarkdown, show_formula_number=req.showFormulaNumber,
                                    format_block_content=req.formatBlockContent,
                                    ignore_labels=None if ignore is None else tuple(ignore)))


def _build(model, names: dict[str, str], **values):
    """``model(**values)``; a validation error names the API field, not ours."""
    try:
        return model(**values)
    except ValidationError as exc:
        raise OptionError(describe(exc, names)) from None


def _set(req: InferRequest, names: dict[str, str]) -> dict[str, Any]:
    return {ours: getattr(req, api) for ours, api in names.items() if getattr(req, api, None) is not None}


def _check_deadline(asked: Optional[float], cap: Optional[tuple[float, str]]) -> None:
    if asked is not None and cap is not None and asked > cap[0]:
        longer = "; a longer document is for a job (POST /jobs/layout-parsing)" if cap[1].startswith("ingress") else ""
        raise OptionError(f"deadlineSeconds: {asked:g} exceeds this server's limit of {cap[0]:g} s ({cap[1]}){longer}")


def _check_supported(req: InferRequest) -> None:
    if req.useDocUnwarping:
        raise OptionError("useDocUnwarping: not available on this server (the official default is off); send flat "
                          "pages")
    if req.useDocOrientationClassify and not orientation_available():
        raise OptionError(ORIENTATION_UNAVAILABLE)
    if req.outputFormats:
        raise OptionError(f"outputFormats: {req.outputFormats} is not supported; use the returned Markdown/JSON")
    known = [f"{k}_{m}" for k in PIXEL_KINDS for m in ("min_pixels", "max_pixels")]
    for key, value in (req.vlmExtraArgs or {}).items():
        if key not in known:
            raise OptionError(f"vlmExtraArgs: key {key!r} is not supported; supported: {known}")
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise OptionError(f"vlmExtraArgs.{key}: must be a positive integer, got {value!r}")


def _layout(req: InferRequest, default: LayoutOptions) -> LayoutOptions:
    changes = _set(req, _LAYOUT)
    return _build(LayoutOptions, _LAYOUT, **{**default.model_dump(), **changes}) if changes else default


def _plan(req: InferRequest, default: PlanOptions) -> PlanOptions:
    changes = {k: v for k, v in _set(req, _PLAN).items() if k != "kind_pixels"}
    label = (req.promptLabel or "").lower()
    if label in ("chart", "seal"):  # reading a page as a chart/seal turns that recognition on
        changes[f"use_{label}_recognition"] = True
    extra = req.vlmExtraArgs or {}
    if extra:
        base = _build(PlanOptions, _PLAN, **{**default.model_dump(), **changes})
        kinds = {}
        for kind in PIXEL_KINDS:
            if f"{kind}_min_pixels" in extra or f"{kind}_max_pixels" in extra:
                lo, hi = base.pixels_for(kind)
                kinds[kind] = (extra.get(f"{kind}_min_pixels", lo), extra.get(f"{kind}_max_pixels", hi))
                if kinds[kind][0] > kinds[kind][1]:
                    raise OptionError(f"vlmExtraArgs: {kind}_min_pixels ({kinds[kind][0]}) must not exceed "
                                      f"{kind}_max_pixels ({kinds[kind][1]})")
        changes["kind_pixels"] = {**default.kind_pixels, **kinds}
    return _build(PlanOptions, _PLAN, **{**default.model_dump(), **changes}) if changes else default


def _sampling(req: InferRequest) -> dict[str, Any]:
    values = _set(req, _SAMPLING)
    values.setdefault("temperature", 0.0)
    return values


def _page_ranges(spec: Optional[str]) -> Optional[str]:
    try:
        check_page_ranges(spec)
    except ValueError as exc:
        raise OptionError(f"pageRanges: {exc}") from None
    return spec or None


_TYPE_TAGS = {"float", "int", "str", "bool", "none"}


def describe(exc: ValidationError, names: Optional[dict[str, str]] = None) -> str:
    """pydantic's errors for people: ``layoutThreshold: must be in [0, 1], got 3``. The members
    of a union (``float | dict``) are one problem: their messages are joined with "or"."""
    problems: dict[str, list] = {}
    for error in exc.errors(include_url=False):
        parts = [str(part) for part in error["loc"] if not _is_type_tag(part)]
        message = error["msg"].removeprefix("Value error, ")
        if parts and names:
            parts[0] = names.get(parts[0], parts[0])
        elif names:  # a check across fields: its message names ours
            for ours, api in names.items():
                message = re.sub(rf"\b{ours}\b", api, message)
        loc = ".".join(parts)
        entry = problems.setdefault(loc, [[], error.get("input"), bool(parts) and error["type"] != "missing"])
        if message not in entry[0]:
            entry[0].append(message)
    lines = []
    for loc, (messages, got, show) in list(problems.items())[:MAX_PROBLEMS]:
        text = messages[0] + "".join(", or " + m.removeprefix("Input should be ") for m in messages[1:])
        lines.append((f"{loc}: " if loc else "")[:MAX_ECHO] + text + (f", got {_short(got)}" if show else ""))
    more = len(problems) - MAX_PROBLEMS
    return "; ".join(lines) + (f"; and {more} more problems" if more > 0 else "")


#: An error message names the first few problems and shows a short start of each value: a large
#: body must not come back larger (or cost the event loop the time to print it).
MAX_PROBLEMS, MAX_ECHO = 5, 80


def _short(value) -> str:
    shortener = reprlib.Repr()  # bounded by construction: a huge nested value is never printed whole
    shortener.maxstring = shortener.maxother = MAX_ECHO
    shortener.maxlist = shortener.maxdict = 6
    shortener.maxlevel = 3
    text = shortener.repr(value)
    return text if len(text) <= MAX_ECHO else text[:MAX_ECHO] + "..."


def _is_type_tag(part) -> bool:
    """pydantic names the member of a union it tried (``float``, ``dict[int,float]``)."""
    return isinstance(part, str) and ("[" in part or part in _TYPE_TAGS)
