"""Recognition stage (GPU): one page in, its blocks read concurrently by one engine, one
:class:`PageResult` out. The engine batches blocks of all pages and requests together."""

from __future__ import annotations

import asyncio
import io
import itertools
import logging
import time
from dataclasses import dataclass, field, replace
from typing import Literal, Optional

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from deployments.datamodel import LayoutBox, PageError, PageImage, PageResult
from deployments.labels import IMAGE_LABELS, PP_DOCLAYOUT_V2_LABELS, PROMPTS
from deployments.recognizer.config import RecognizerConfig
from deployments.recognizer.engines import Engine, GenerationRequest, GenerationResult, create_engine
from deployments.recognizer.lite_tables import is_ruled, table_otsl
from deployments.recognizer.options import PlanOptions
from deployments.recognizer.planning import plan_page
from deployments.recognizer.results import build_page_result
from deployments.textlayer import assign_words, block_text, fit_to_ink
from deployments.resources import apply_threads

log = logging.getLogger(__name__)
_ids = itertools.count()
TEXT_CLS = PP_DOCLAYOUT_V2_LABELS.index("text")
BIG_BOX = 0.5  # share of the page
FORMULA_LIKE = ("display_formula", "inline_formula", "chart")
NOT_TEXT = (*FORMULA_LIKE, *IMAGE_LABELS, "table", "seal", "figure")


class SamplingOptions(BaseModel):
    """Per-request sampling (the API's temperature, topP, repetitionPenalty, maxNewTokens)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    temperature: float = Field(0.0, ge=0)
    top_p: Optional[float] = Field(None, gt=0, le=1)
    repetition_penalty: Optional[float] = Field(None, gt=0)
    max_new_tokens: Optional[int] = Field(None, gt=0)


TextLayerMode = Literal["auto", "off", "prefer"]


@dataclass(slots=True)
class PageRequest:
    """Everything the recognizer needs for one page besides the image and boxes. ``timeout_s``
    is the page's deadline (the request's remaining time); None uses ``page_timeout_s``.
    ``text_layer``: whether text blocks may be read from the PDF's own text (``uses_text_layer``)."""

    plan: Optional[PlanOptions] = None
    sampling: SamplingOptions = field(default_factory=SamplingOptions)
    timeout_s: Optional[float] = None
    text_layer: TextLayerMode = "auto"


def choose_engine(config: RecognizerConfig) -> tuple[str, str]:
    """(engine, reason) for ``engine: auto``."""
    if config.engine != "auto":
        return config.engine, "set in the config"
    if config.model is None:
        return "lite", "no recognition model configured: PP-OCRv6 text lines from rapidocr (offline)"
    try:
        import vllm  # noqa: F401
    except ImportError:
        return "transformers", "vLLM is not installed: transformers' PaddleOCR-VL"
    return "vllm", "vLLM is installed and a model is configured"


def jpeg_roundtrip(image: np.ndarray, quality: Optional[int]) -> np.ndarray:
    """PaddleX sends crops as JPEG; doing the same keeps outputs identical to it."""
    if quality is None:
        return image
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


class Recognizer:
    """Plans the blocks of a page and reads them through the injected engine."""

    def __init__(self, config: Optional[RecognizerConfig] = None, engine: Optional[Engine] = None):
        self.config = config or RecognizerConfig()
        apply_threads(self.config.num_cpus)
        if engine is None:
            name, reason = choose_engine(self.config)
            log.info("recognition engine %s (%s)", name, reason)
            engine = create_engine(name, self.config)
        self.engine = engine

    @staticmethod
    def get_deployment_options(config: RecognizerConfig) -> dict:
        return {"ray_actor_options": {"num_cpus": config.num_cpus, "num_gpus": config.num_gpus}}

    async def start(self) -> None:
        await self.engine.start()

    async def check_health(self) -> None:
        await self.engine.check_health()

    async def shutdown(self) -> None:
        await self.engine.shutdown()

    def _plan_options(self, request: PageRequest) -> PlanOptions:
        """Labels the engine cannot read become images (e.g. tables with the lite engine)."""
        options = request.plan or self.config.plan
        missing = {"table", "formula", "chart"} - set(self.engine.tasks)
        return options.model_copy(update={"image_fallback": tuple(sorted(missing))}) if missing else options

    async def recognize(self, page: PageImage, boxes: list[LayoutBox], request: Optional[PageRequest] = None) -> PageResult:
        """Read every block of ``page``; a failure or an exceeded deadline fails this page only."""
        request = request or PageRequest()
        if page.error is not None:
            return PageResult.failed(page, page.error)
        options = self._plan_options(request)
        planned = self._best_effort_boxes(page, boxes) if self.best_effort else boxes
        plan = await asyncio.to_thread(plan_page, page.image, planned, options)  # crops and merges: CPU work
        from_layer = self._from_text_layer(page, plan, request)
        timeout = request.timeout_s or self.config.page_timeout_s
        try:
            outputs = await asyncio.wait_for(self._read_blocks(plan, request, set(from_layer)), timeout)
        except asyncio.TimeoutError:
            return self.failed_page(page, "deadline_exceeded",
                                f"page {page.page_index + 1} was not read within {timeout:g} s; its blocks were "
                                "cancelled. Raise the request deadline or page_timeout_s, or add recognizer replicas")
        except Exception as exc:  # noqa: BLE001 - an engine error fails this page, not the server
            log.exception("recognition failed on page %s of %s", page.page_index, page.doc_id)
            return self.failed_page(page, "recognition_failed", f"the recognition engine failed: {exc}")
        outputs.update(from_layer)
        result = build_page_result(plan, {k: r.text for k, r in outputs.items()}, page_index=page.page_index,
                                   width=page.width, height=page.height, layout_boxes=boxes,
                                   options=options, page_count=page.page_count,
                                   details={k: (r.num_tokens, r.finish_reason) for k, r in outputs.items()},
                                   sources=dict.fromkeys(from_layer, "text_layer"))
        result.angle = page.angle
        return result

    @property
    def best_effort(self) -> bool:
        """The engine reads pixels worst (lite): the recognizer helps it beyond the official pipeline."""
        return bool(getattr(self.engine, "best_effort", False))

    def uses_text_layer(self, mode: TextLayerMode) -> bool:
        """auto: the PDF's own text where it is good, for a best-effort engine (lite); prefer: for
        every engine (text blocks skip the model); off: never."""
        return mode == "prefer" or (mode == "auto" and self.best_effort)

    def _best_effort_boxes(self, page: PageImage, boxes: list[LayoutBox]) -> list[LayoutBox]:
        """What a best-effort engine reads beyond the official pipeline: a page where layout found
        nothing is read whole, and a box over half the page or more that the engine would return as an
        image though it holds text is read as text: a formula or chart box, a table box without ruling
        lines (a newspaper's columns, an exam sheet), a figure box with 20+ words of text layer."""
        if not boxes:
            return [LayoutBox(TEXT_CLS, "text", 1.0, (0, 0, page.width, page.height), 1)]
        out, page_area = [], page.width * page.height
        for box in boxes:
            x0, y0, x1, y1 = box.coordinate
            if (x1 - x0) * (y1 - y0) >= BIG_BOX * page_area and self._holds_text(page, box):
                log.debug("page %s: %s box over most of the page read as text", page.page_index, box.label)
                box = replace(box, label="text", cls_id=TEXT_CLS)
            if box.label not in NOT_TEXT:  # boxes that cut the first letters of lines are widened
                box = replace(box, coordinate=fit_to_ink(page.image, box.coordinate))
            out.append(box)
        return out

    @staticmethod
    def _holds_text(page: PageImage, box: LayoutBox) -> bool:
        x0, y0, x1, y1 = box.coordinate
        if box.label in FORMULA_LIKE:
            return True
        if box.label == "table":
            return not is_ruled(page.image[y0:y1, x0:x1])
        if box.label in IMAGE_LABELS and page.text_layer is not None:
            return len(assign_words(page.text_layer, [box.coordinate])[0]) >= 20
        return False

    def _from_text_layer(self, page: PageImage, plan, request: PageRequest) -> dict[int, GenerationResult]:
        """Text blocks read from the page's text layer (``deployments.textlayer`` decides per block);
        every other block goes to the engine. A merged group (its members' crops stacked into one
        image) is read member by member and joined, as the engine reads the stacked image."""
        if page.text_layer is None or not self.uses_text_layer(request.text_layer):
            return {}
        # Every block takes part, so that the words of a table or a figure stay out of text blocks.
        owned = dict(zip((b.index for b in plan.blocks), assign_words(page.text_layer, [b.bbox for b in plan.blocks])))
        members: dict[int, list[int]] = {}
        for block in plan.blocks:
            members.setdefault(block.index if block.group_id is None else block.group_id, []).append(block.index)
        out = {}
        for block in plan.blocks:
            if block.needs_model and block.prompt == PROMPTS["table"] and block.group_id is None:
                table = self._table_from_layer(page, block.bbox, owned[block.index])
                if table:
                    out[block.index] = GenerationResult(table, len(owned[block.index]), "stop")
                continue
            if not block.needs_model or block.prompt != PROMPTS["ocr"]:
                continue
            texts = [block_text(page.text_layer, owned[i]) for i in members[block.group_id if block.group_id
                                                                                is not None else block.index]]
            if any(text is None for text, _ in texts):
                log.debug("page %s block %s read from pixels: %s", page.page_index, block.index,
                          next(reason for text, reason in texts if text is None))
                continue
            text = " ".join(t for t, _ in texts)
            out[block.index] = GenerationResult(text, len(text.split()), "stop")
        return out

    @staticmethod
    def _table_from_layer(page: PageImage, bbox, words) -> str:
        """A table block from the layer's words on the table's grid (OTSL), or "" to read pixels."""
        text, _ = block_text(page.text_layer, words)
        if text is None:
            return ""
        x0, y0, x1, y1 = bbox
        boxes = page.text_layer.boxes[words] - np.array([x0, y0, x0, y0], np.float32)
        return table_otsl(page.image[y0:y1, x0:x1], boxes, [page.text_layer.words[i] for i in words])

    async def _read_blocks(self, plan, request: PageRequest, skip: frozenset = frozenset()) -> dict[int, GenerationResult]:
        blocks = [b for b in plan.blocks if b.needs_model and b.index not in skip]
        # The JPEG round trips are CPU work: off the event loop that the engine's output handler shares.
        images = await asyncio.to_thread(lambda: [jpeg_roundtrip(b.image, self.config.jpeg_quality) for b in blocks])
        results = await asyncio.gather(*(self.engine.generate(self._request(b, image, request))
                                         for b, image in zip(blocks, images)))
        return {b.index: r for b, r in zip(blocks, results)}

    def _request(self, block, image: np.ndarray, request: PageRequest) -> GenerationRequest:
        s = request.sampling
        return GenerationRequest(
            request_id=f"blk-{next(_ids)}-{time.monotonic_ns()}", prompt=block.prompt,
            image=image, min_pixels=block.min_pixels,
            max_pixels=block.max_pixels, max_new_tokens=s.max_new_tokens or self.config.max_new_tokens,
            temperature=s.temperature, top_p=s.top_p, repetition_penalty=s.repetition_penalty,
            skip_special_tokens=block.prompt != "Spotting:")

    @staticmethod
    def failed_page(page: PageImage, kind: str, message: str) -> PageResult:
        return PageResult.failed(page, PageError("recognize", kind, message))
