"""Offline CPU engine without a VLM: PP-OCRv6 detection + recognition (ONNX weights inside the
rapidocr wheel) reads text blocks line by line (``cpu_workers`` single-threaded pipelines side by side, one block each),
and tables as best-effort grids of OCR'd lines
(``lite_tables``). It cannot read formulas or charts; the recognizer keeps those as images and says
so in the page's model settings."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from deployments.labels import PROMPTS
from deployments.recognizer.config import RecognizerConfig
from deployments.recognizer.engines import GenerationRequest, GenerationResult
from deployments.recognizer.lite_tables import table_otsl
from deployments.resources import ORT_SINGLE_THREAD, cpu_workers
from deployments.textlayer import order_lines


class LiteEngine:
    name = "lite"
    tasks = frozenset({"ocr", "table", "seal", "spotting"})  # tables: OCR'd lines on the table's grid
    best_effort = True  # the recognizer reads the PDF's text layer and big mislabelled boxes for it

    def __init__(self, config: RecognizerConfig):
        self.config = config
        self.workers = cpu_workers(config.cpu_workers)
        self.pool: asyncio.Queue | None = None  # idle single-threaded OCR pipelines, one per worker
        self.threads: ThreadPoolExecutor | None = None
        self.in_flight = 0

    async def start(self) -> None:
        from rapidocr import RapidOCR

        # Detection resizes each block so its LONG side is at most 1280 px. rapidocr's default
        # ("min" 736) instead scales the SHORT side up to 736: a 870x48 text line became a
        # 13,000x736 image and took 2.3 s instead of 0.3 s on one core (the same text comes out).
        params = {"Global.use_cls": False, "Global.log_level": "error", "Det.limit_type": "max",
                  "Det.limit_side_len": 1280,
                  **{f"EngineConfig.onnxruntime.{k}": v for k, v in ORT_SINGLE_THREAD.items()}}
        self.threads = ThreadPoolExecutor(self.workers, thread_name_prefix="lite-ocr")
        pipelines = [RapidOCR(params=params) for _ in range(self.workers)]
        # rapidocr loads its models on first use: read a line on every pipeline now, so that the
        # first request does not pay for it and a broken install fails the replica's start.
        line = warm_up_line()
        loop = asyncio.get_running_loop()
        await asyncio.gather(*(loop.run_in_executor(self.threads, ocr, line) for ocr in pipelines))
        self.pool = asyncio.Queue()
        for ocr in pipelines:
            self.pool.put_nowait(ocr)

    async def generate(self, request: GenerationRequest) -> GenerationResult:
        if self.pool is None:
            raise RuntimeError("the lite engine is not started")
        self.in_flight += 1
        try:
            ocr = await self.pool.get()
        except BaseException:  # cancelled while waiting for a pipeline: nothing ran
            self.in_flight -= 1
            raise
        loop = asyncio.get_running_loop()
        job = self.threads.submit(ocr, np.ascontiguousarray(request.image[..., ::-1]))
        # The pipeline is free again when its thread is done, not when the caller stops waiting
        # (a cancelled caller cannot stop a running ONNX call; it finishes its block, then stops).
        job.add_done_callback(lambda _: self._release(loop, ocr))
        return self._answer(request, await asyncio.wrap_future(job))

    def _release(self, loop: asyncio.AbstractEventLoop, ocr) -> None:
        def release():
            self.in_flight -= 1
            if self.pool is not None:
                self.pool.put_nowait(ocr)
        try:
            loop.call_soon_threadsafe(release)
        except RuntimeError:  # the loop is closed: the engine is gone
            pass

    def unfinished(self) -> int:
        """Blocks waiting for a pipeline or on one (a cancelled caller's waiting blocks are dropped at
        once; a block already on a pipeline finishes, a second or so, and then counts no more)."""
        return self.in_flight

    @staticmethod
    def _answer(request: GenerationRequest, result) -> GenerationResult:
        if result.txts is None or len(result.txts) == 0:
            return GenerationResult("", 0, "stop")
        boxes, texts = np.asarray(result.boxes, dtype=np.float64), list(result.txts)
        if request.prompt == PROMPTS["table"]:
            xyxy = np.column_stack([boxes[:, :, 0].min(1), boxes[:, :, 1].min(1), boxes[:, :, 0].max(1), boxes[:, :, 1].max(1)])
            otsl = table_otsl(request.image, xyxy, texts)
            return GenerationResult(otsl, len(texts), "stop")
        text = order_lines(boxes, texts)
        return GenerationResult(text, len(text.split()), "stop")

    async def check_health(self) -> None:
        if self.pool is None:
            raise RuntimeError("the lite engine is not started")

    async def shutdown(self) -> None:
        if self.threads is not None:
            self.threads.shutdown(wait=True)
        self.pool = self.threads = None


def warm_up_line() -> np.ndarray:
    """A BGR image of one printed line, enough to load detection and recognition."""
    import cv2

    image = np.full((64, 480, 3), 255, np.uint8)
    cv2.putText(image, "Warm up 123", (12, 44), cv2.FONT_HERSHEY_SIMPLEX, 1.2, (0, 0, 0), 2)
    return image
