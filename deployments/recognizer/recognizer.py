"""Recognition stage (GPU): one page in, its blocks read concurrently by one engine, one
:class:`PageResult` out. The engine batches blocks of all pages and requests together."""

from __future__ import annotations

import asyncio
import io
import itertools
import logging
import time
from dataclasses import dataclass, field
from typing import Collection, Literal, Optional

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from deployments.datamodel import ErrorKind, LayoutBox, PageError, PageImage, PageResult, Stage
from deployments.recognizer.assist import best_effort_boxes, texts_from_layer
from deployments.recognizer.config import RecognizerConfig
from deployments.recognizer.engines import Engine, GenerationRequest, GenerationResult, create_engine, engine_class
from deployments.recognizer.options import PlanOptions
from deployments.recognizer.planning import plan_page
from deployments.recognizer.results import build_page_result
from deployments.resources import apply_threads

log = logging.getLogger(__name__)
_ids = itertools.count()


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


def uses_text_layer(mode: TextLayerMode, best_effort: bool) -> bool:
    """auto: the PDF's own text where it is good, for a best-effort engine (lite); prefer: for
    every engine (text blocks skip the model); off: never."""
    return mode == "prefer" or (mode == "auto" and best_effort)


def needs_text_layer(mode: TextLayerMode, best_effort: bool) -> bool:
    """Whether pages must come with their PDF's words: to read text blocks from them, or for a
    best-effort engine's boxes (``best_effort_boxes``). Otherwise the renderer skips them."""
    return uses_text_layer(mode, best_effort) or best_effort


def pages_need_text_layer(config: RecognizerConfig, mode: TextLayerMode) -> bool:
    """``needs_text_layer`` for the engine ``config`` picks, before any engine starts (a bulk
    job's render tasks run before its recognition actors)."""
    return needs_text_layer(mode, bool(getattr(engine_class(choose_engine(config)[0]), "best_effort", False)))


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

    def unfinished(self) -> int:
        """Engine requests not finished or aborted yet (0 once a cancelled document is cleaned up)."""
        return self.engine.unfinished()

    def engine_stats(self, reset: bool = False) -> dict:
        """A simulated engine's counters (busy time, steps, batch sizes); {} for the real engines."""
        stats = getattr(self.engine, "stats", None)
        return stats(reset) if stats else {}

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
        planned = best_effort_boxes(page, boxes) if self.best_effort else boxes
        plan = await asyncio.to_thread(plan_page, page.image, planned, options)  # crops and merges: CPU work
        layer = await asyncio.to_thread(texts_from_layer, page, plan) if self.uses_text_layer(request.text_layer) else {}
        timeout = request.timeout_s or self.config.page_timeout_s
        try:
            outputs = await asyncio.wait_for(self._read_blocks(plan, request, set(layer)), timeout)
        except asyncio.TimeoutError:
            return self.failed_page(page, ErrorKind.DEADLINE_EXCEEDED,
                                f"page {page.page_index + 1} was not read within {timeout:g} s; its blocks were "
                                "cancelled. Raise the request deadline or page_timeout_s, or add recognizer replicas")
        except Exception as exc:  # noqa: BLE001 - an engine error fails this page, not the server
            log.exception("recognition failed on page %s of %s", page.page_index, page.doc_id)
            return self.failed_page(page, ErrorKind.RECOGNITION_FAILED, f"the recognition engine failed: {exc}")
        outputs.update({k: GenerationResult(text, len(text.split()), "stop") for k, text in layer.items()})
        result = build_page_result(plan, {k: r.text for k, r in outputs.items()}, page_index=page.page_index,
                                   width=page.width, height=page.height, layout_boxes=boxes,
                                   options=options, page_count=page.page_count,
                                   details={k: (r.num_tokens, r.finish_reason) for k, r in outputs.items()},
                                   sources=dict.fromkeys(layer, "text_layer"))
        result.angle = page.angle
        return result

    @property
    def best_effort(self) -> bool:
        """The engine reads pixels worst (lite): the recognizer helps it beyond the official pipeline."""
        return bool(getattr(self.engine, "best_effort", False))

    def uses_text_layer(self, mode: TextLayerMode) -> bool:
        return uses_text_layer(mode, self.best_effort)

    def needs_text_layer(self, mode: TextLayerMode) -> bool:
        return needs_text_layer(mode, self.best_effort)

    async def _read_blocks(self, plan, request: PageRequest, skip: Collection[int] = ()) -> dict[int, GenerationResult]:
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
            skip_special_tokens=block.prompt != "Spotting:", bbox=tuple(block.bbox))

    @staticmethod
    def failed_page(page: PageImage, kind: ErrorKind, message: str) -> PageResult:
        return PageResult.failed(page, PageError(Stage.RECOGNIZE, kind, message))
