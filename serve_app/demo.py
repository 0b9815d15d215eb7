"""Offline run of the page path on a recorded page (``python -m serve_app demo``).

It draws the page described by the JSON and sends it through the pipeline every caller uses
(``DocumentPipeline`` over in-process stages), with the two models replaced by the recording: a
layout backend that returns the recorded raw detections and an engine that answers each block
with the recorded answer for its box. What it writes is what the service returns for that page:
``page.md``, ``page.json`` (prunedResult), Markdown images and the layout visualisations.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from deployments.labels import PP_DOCLAYOUT_V2_LABELS
from deployments.layout.detector import LayoutDetector
from deployments.recognizer.engines import GenerationResult
from deployments.recognizer.recognizer import Recognizer
from deployments.renderer import Renderer
from serve_app.options import ParseOptions
from serve_app.pipeline import DocumentPipeline, LocalStages
from serve_app.respond import document_entries


def draw_page(spec: dict) -> np.ndarray:
    """A white page with each answered box's text drawn where the detector saw it."""
    img = Image.new("RGB", (spec["width"], spec["height"]), "white")
    draw = ImageDraw.Draw(img)
    for key, text in spec["answers"].items():
        x1, y1, x2, y2 = (int(v) for v in key.split(","))
        draw.rectangle([x1, y1, x2, y2], outline=(200, 200, 200))
        draw.text((x1 + 4, y1 + 4), text[:80], fill=(0, 0, 0))
    return np.array(img)


class RecordedLayout:
    """A layout backend with the recorded raw detections (PP-DocLayoutV2's labels)."""

    labels = PP_DOCLAYOUT_V2_LABELS

    def __init__(self, detections: list[list[float]]):
        self.rows = np.array(detections, float)

    def predict(self, images, score_floor):
        return [self.rows for _ in images]


class RecordedEngine:
    """An engine answering each block with the recorded answer for its box."""

    name, tasks = "recorded", frozenset({"ocr", "table", "formula", "chart", "seal", "spotting"})

    def __init__(self, answers: dict[str, str]):
        self.answers = answers

    async def start(self):
        pass

    async def generate(self, request):
        print(f"  {request.prompt:<22} {request.image.shape[1]}x{request.image.shape[0]} px  box {request.bbox}")
        text = self.answers.get(",".join(map(str, request.bbox)), "")
        return GenerationResult(text, len(text.split()), "stop")

    def unfinished(self) -> int:
        return 0


def run_demo(spec_path: Path, out_dir: Path) -> str:
    """Parse the page of ``spec_path`` into ``out_dir``; returns the Markdown."""
    spec = json.loads(spec_path.read_text())
    png = io.BytesIO()
    Image.fromarray(draw_page(spec)).save(png, format="PNG")
    stages = LocalStages(Renderer(), LayoutDetector(backend=RecordedLayout(spec["detections"])),
                         Recognizer(engine=RecordedEngine(spec["answers"])))
    options = ParseOptions.from_request({"visualize": True})
    parsed = asyncio.run(DocumentPipeline(stages).parse(png.getvalue(), "image", options, "demo"))
    (entry,) = document_entries(parsed.pages, options)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "page.md").write_text(entry["markdown"]["text"])
    (out_dir / "page.json").write_text(json.dumps(entry["prunedResult"], indent=2, ensure_ascii=False))
    images = {**(entry["markdown"]["images"] or {}), **{f"{k}.jpg": v for k, v in entry["outputImages"].items()}}
    for path, data in images.items():
        (out_dir / path).parent.mkdir(parents=True, exist_ok=True)
        (out_dir / path).write_bytes(base64.b64decode(data))
    return entry["markdown"]["text"]
