"""Access to the official PaddleX 3.7 implementation for differential tests (tests only)."""

from __future__ import annotations

from paddlex.inference.models.layout_analysis.processors import (
    SKIP_ORDER_LABELS,
    LayoutAnalysisProcess,
    update_order_index,
)
from paddlex.inference.pipelines.components import CropByBoxes
from paddlex.inference.pipelines.layout_parsing.utils import gather_imgs
from paddlex.inference.pipelines.paddleocr_vl import uilts
from paddlex.inference.pipelines.paddleocr_vl.pipeline import _PaddleOCRVLPipeline
from paddlex.inference.pipelines.paddleocr_vl.result import PaddleOCRVLBlock, PaddleOCRVLResult

__all__ = [
    "LayoutAnalysisProcess", "update_order_index", "SKIP_ORDER_LABELS", "uilts", "gather_imgs",
    "PaddleOCRVLBlock", "PaddleOCRVLResult", "official_pipeline", "official_layout",
]


class RecordingVL:
    """Stands in for the VLM inside the official pipeline: answers with ``answer(query, rgb)``
    and records every request (the thing under test is the pipeline logic, not the model)."""

    def __init__(self, answer):
        self.answer = answer
        self.calls: list[dict] = []

    def predict(self, inputs, skip_special_tokens=True, **kwargs):
        for item in inputs:
            rgb = item["image"][..., ::-1]
            self.calls.append({"query": item["query"], "image": rgb, "min_pixels": kwargs["min_pixels"],
                               "max_pixels": kwargs["max_pixels"]})
            yield {"result": self.answer(item["query"], rgb)}


def official_pipeline(answer) -> _PaddleOCRVLPipeline:
    """A bare ``_PaddleOCRVLPipeline`` with its cropping component and a recording VLM."""
    pipe = object.__new__(_PaddleOCRVLPipeline)
    pipe.crop_by_boxes = CropByBoxes()
    pipe.layout_prep_cpu_workers = 1
    pipe.vl_rec_model = RecordingVL(answer)
    return pipe


def official_layout(labels) -> LayoutAnalysisProcess:
    return LayoutAnalysisProcess(labels=list(labels), scale_size=[800, 800])


def official_result(data: dict) -> PaddleOCRVLResult:
    return PaddleOCRVLResult(data)


def prune(obj):
    """The serving app's ``prune_result``: drop input_path/page_index at every level."""
    if isinstance(obj, dict):
        return {k: prune(v) for k, v in obj.items() if k not in ("input_path", "page_index")}
    if isinstance(obj, list):
        return [prune(v) for v in obj]
    return obj
