"""Access to the official PaddleX 3.7 implementation, for the differential tests and
``benchmarks.document_logic``: the official pipeline's pieces, and one page through both
implementations with the same boxes and recorded model answers (``ours_page``, ``official_page``)."""

from __future__ import annotations

import hashlib
import random

import numpy as np

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

from deployments.labels import V1_MARKDOWN_IGNORE_LABELS
from deployments.recognizer.options import PlanOptions
from deployments.recognizer.planning import plan_page
from deployments.recognizer.results import build_page_result
from devtools.generators import answer_for, random_layout, synthetic_page, with_polygons

__all__ = [
    "LayoutAnalysisProcess", "update_order_index", "SKIP_ORDER_LABELS", "uilts", "gather_imgs",
    "PaddleOCRVLBlock", "PaddleOCRVLResult", "official_pipeline", "official_layout", "scenario", "ours_page",
    "official_page", "request_key",
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


#: Our crop guards off: the official pipeline has none.
NO_GUARDS = {"min_side": 1, "max_aspect": 1e9}


def request_key(query, rgb, lo, hi):
    return (query, lo, hi, rgb.shape, hashlib.sha1(np.ascontiguousarray(rgb).tobytes()).hexdigest())


def scenario(seed: int, shape_mode: str = "rect"):
    """A page, its boxes (with polygons as PP-DocLayoutV3 gives them unless ``shape_mode`` is
    rect), the model settings and pixel options of one generated case."""
    rng = random.Random(seed)
    page = synthetic_page(rng, rng.choice([500, 600, 800]), rng.choice([700, 800]))
    boxes = with_polygons(rng, random_layout(rng, page.shape[1], page.shape[0]), shape_mode)
    settings = {
        "use_doc_preprocessor": False, "use_layout_detection": True,
        "use_chart_recognition": rng.random() < 0.4, "use_seal_recognition": rng.random() < 0.3,
        "use_ocr_for_image_block": rng.random() < 0.2, "format_block_content": rng.random() < 0.3,
        "merge_layout_blocks": rng.random() < 0.8,
        "markdown_ignore_labels": rng.choice([list(V1_MARKDOWN_IGNORE_LABELS), [], ["text", "table"]]),
        "return_layout_polygon_points": shape_mode != "rect",
    }
    pixels = rng.choice([{}, {"min_pixels": 147384, "max_pixels": 2822400}, {"table_max_pixels": 2000000}])
    return rng, page, boxes, settings, pixels


def ours_page(page, boxes, settings, pixels):
    kind = {k.split("_")[0]: (pixels.get(f"{k.split('_')[0]}_min_pixels", 112896), v)
            for k, v in pixels.items() if k.startswith("table_")}
    opts = PlanOptions(
        use_chart_recognition=settings["use_chart_recognition"], use_seal_recognition=settings["use_seal_recognition"],
        use_ocr_for_image_block=settings["use_ocr_for_image_block"], merge_layout_blocks=settings["merge_layout_blocks"],
        min_pixels=pixels.get("min_pixels"), max_pixels=pixels.get("max_pixels"), kind_pixels=kind, **NO_GUARDS)
    plan = plan_page(page, boxes, opts)
    calls = [request_key(b.prompt, b.image, b.min_pixels, b.max_pixels) for b in plan.blocks if b.needs_model]
    outputs = {b.index: answer_for(b.prompt, b.image) for b in plan.blocks if b.needs_model}
    result = build_page_result(plan, outputs, page_index=0, width=page.shape[1], height=page.shape[0],
                               layout_boxes=boxes, options=opts)
    return calls, result


def official_page(page, boxes, settings, pixels):
    bgr = np.ascontiguousarray(page[..., ::-1])
    dicts = [{"cls_id": b.cls_id, "label": b.label, "score": b.score, "coordinate": list(b.coordinate),
              "order": b.order, **({} if b.polygon_points is None else {"polygon_points": b.polygon_points})}
             for b in boxes]
    pipe = official_pipeline(answer_for)
    imgs_in_doc = gather_imgs(bgr, dicts)
    parsing, _, spotting, imgs = pipe.get_layout_parsing_results(
        images=[bgr], layout_det_results=[{"boxes": dicts}], imgs_in_doc=[imgs_in_doc],
        use_chart_recognition=settings["use_chart_recognition"], use_seal_recognition=settings["use_seal_recognition"],
        use_ocr_for_image_block=settings["use_ocr_for_image_block"], vlm_kwargs=dict(pixels),
        merge_layout_blocks=settings["merge_layout_blocks"],
        layout_shape_mode="auto" if settings["return_layout_polygon_points"] else "rect")
    calls = [request_key(c["query"], c["image"], c["min_pixels"], c["max_pixels"]) for c in pipe.vl_rec_model.calls]
    result = official_result({
        "input_path": None, "page_index": 0, "page_count": None, "width": page.shape[1], "height": page.shape[0],
        "doc_preprocessor_res": {"output_img": bgr}, "layout_det_res": {"input_path": None, "page_index": 0, "boxes": dicts},
        "table_res_list": [], "parsing_res_list": parsing[0], "spotting_res": spotting[0], "imgs_in_doc": imgs[0],
        "model_settings": settings,
    })
    return calls, result
