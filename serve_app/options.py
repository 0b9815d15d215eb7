"""Request options (API field names) → the stage options (our configs)."""

from __future__ import annotations

from typing import Any

from deployments.layout.options import LayoutOptions
from deployments.recognizer.options import PIXEL_KINDS, PlanOptions, check_prompt_label
from deployments.recognizer.recognizer import SamplingOptions
from serve_app.protocol import InferRequest
from serve_app.settings import model_settings


class UnsupportedOption(ValueError):
    """A request option this server cannot honour (422 with the reason)."""


def check_supported(req: InferRequest) -> None:
    if req.useDocOrientationClassify or req.useDocUnwarping:
        raise UnsupportedOption("useDocOrientationClassify/useDocUnwarping are not available on this server "
                                "(the official default is off); send upright, flat pages")
    if req.outputFormats:
        raise UnsupportedOption(f"outputFormats {req.outputFormats} is not supported; use the returned Markdown/JSON")
    for key in req.vlmExtraArgs or {}:
        kind, _, rest = key.partition("_")
        if kind not in PIXEL_KINDS or rest not in ("min_pixels", "max_pixels"):
            raise UnsupportedOption(f"vlmExtraArgs key {key!r} is not supported; supported: "
                                    f"{[f'{k}_{m}' for k in PIXEL_KINDS for m in ('min_pixels', 'max_pixels')]}")


def layout_options(req: InferRequest, default: LayoutOptions) -> LayoutOptions:
    changes: dict[str, Any] = {}
    if req.layoutThreshold is not None:
        changes["threshold"] = req.layoutThreshold
    if req.layoutNms is not None:
        changes["nms"] = req.layoutNms
    if req.layoutUnclipRatio is not None:
        changes["unclip_ratio"] = req.layoutUnclipRatio
    if req.layoutMergeBboxesMode is not None:
        changes["merge_bboxes_mode"] = req.layoutMergeBboxesMode
    return LayoutOptions(**{**default.model_dump(), **changes}) if changes else default


def plan_options(req: InferRequest, default: PlanOptions) -> PlanOptions:
    changes: dict[str, Any] = {}
    for field, value in (("use_chart_recognition", req.useChartRecognition), ("use_seal_recognition", req.useSealRecognition),
                         ("use_ocr_for_image_block", req.useOcrForImageBlock), ("merge_layout_blocks", req.mergeLayoutBlocks),
                         ("min_pixels", req.minPixels), ("max_pixels", req.maxPixels)):
        if value is not None:
            changes[field] = value
    if req.promptLabel and req.promptLabel.lower() == "chart":
        changes["use_chart_recognition"] = True
    if req.promptLabel and req.promptLabel.lower() == "seal":
        changes["use_seal_recognition"] = True
    extra = req.vlmExtraArgs or {}
    if extra:
        base = PlanOptions(**{**default.model_dump(), **changes})
        kinds = {}
        for kind in PIXEL_KINDS:
            lo, hi = base.pixels_for(kind)
            if f"{kind}_min_pixels" in extra or f"{kind}_max_pixels" in extra:
                kinds[kind] = (int(extra.get(f"{kind}_min_pixels", lo)), int(extra.get(f"{kind}_max_pixels", hi)))
        changes["kind_pixels"] = {**default.kind_pixels, **kinds}
    return PlanOptions(**{**default.model_dump(), **changes}) if changes else default


def sampling_options(req: InferRequest) -> SamplingOptions:
    return SamplingOptions(temperature=req.temperature or 0.0, top_p=req.topP,
                           repetition_penalty=req.repetitionPenalty, max_new_tokens=req.maxNewTokens)


def request_settings(req: InferRequest, plan: PlanOptions) -> dict[str, Any]:
    """``model_settings`` reported with each page."""
    return model_settings(
        use_layout_detection=req.useLayoutDetection is not False, use_chart_recognition=plan.use_chart_recognition,
        use_seal_recognition=plan.use_seal_recognition, use_ocr_for_image_block=plan.use_ocr_for_image_block,
        format_block_content=bool(req.formatBlockContent), merge_layout_blocks=plan.merge_layout_blocks,
        markdown_ignore_labels=req.markdownIgnoreLabels, layout_shape_mode=req.layoutShapeMode)


def prompt_label(req: InferRequest) -> str:
    return check_prompt_label(req.promptLabel)
