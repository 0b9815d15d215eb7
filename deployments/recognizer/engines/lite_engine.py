"""Offline CPU engine without a VLM: PP-OCRv6 detection + recognition (ONNX weights inside the
rapidocr wheel) reads text blocks line by line, and tables as best-effort grids of OCR'd lines
(``lite_tables``). It cannot read formulas or charts; the recognizer keeps those as images and says
so in the page's model settings."""

from __future__ import annotations

import asyncio

import numpy as np

from deployments.labels import PROMPTS
from deployments.recognizer.config import RecognizerConfig
from deployments.recognizer.engines import GenerationRequest, GenerationResult
from deployments.recognizer.lite_tables import table_otsl
from deployments.textlayer import order_lines


class LiteEngine:
    name = "lite"
    tasks = frozenset({"ocr", "table", "seal", "spotting"})  # tables: OCR'd lines on the table's grid
    best_effort = True  # the recognizer reads the PDF's text layer and big mislabelled boxes for it

    def __init__(self, config: RecognizerConfig):
        self.config = config
        self.ocr = None
        self.lock = asyncio.Lock()  # one ONNX pipeline; Ray replicas scale it out

    async def start(self) -> None:
        from rapidocr import RapidOCR

        # Detection resizes each block so its LONG side is at most 1280 px. rapidocr's default
        # ("min" 736) instead scales the SHORT side up to 736: a 870x48 text line became a
        # 13,000x736 image and took 2.3 s instead of 0.3 s on one core (the same text comes out).
        self.ocr = RapidOCR(params={"Global.use_cls": False, "Global.log_level": "error",
                                    "Det.limit_type": "max", "Det.limit_side_len": 1280})

    async def generate(self, request: GenerationRequest) -> GenerationResult:
        async with self.lock:
            result = await asyncio.to_thread(self.ocr, np.ascontiguousarray(request.image[..., ::-1]))
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
        if self.ocr is None:
            raise RuntimeError("the lite engine is not started")

    async def shutdown(self) -> None:
        self.ocr = None
