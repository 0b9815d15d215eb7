"""Offline run of the document logic on a recorded page (``python -m serve_app demo``).

It draws the page described by the JSON, post-processes its raw layout detections, plans the
model requests, takes the recorded answers in place of the recognizer and writes exactly what
the service returns for that page: ``page.md``, ``page.json`` (prunedResult), Markdown images
and the layout visualisations.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from deployments.layout.postprocess import postprocess_layout
from deployments.recognizer.options import PlanOptions
from deployments.recognizer.planning import plan_page
from deployments.recognizer.results import build_page_result
from serve_app.assemble import page_markdown, pruned_result, visualize


def draw_page(spec: dict) -> np.ndarray:
    """A white page with each answered box's text drawn where the detector saw it."""
    img = Image.new("RGB", (spec["width"], spec["height"]), "white")
    draw = ImageDraw.Draw(img)
    for key, text in spec["answers"].items():
        x1, y1, x2, y2 = (int(v) for v in key.split(","))
        draw.rectangle([x1, y1, x2, y2], outline=(200, 200, 200))
        draw.text((x1 + 4, y1 + 4), text[:80], fill=(0, 0, 0))
    return np.array(img)


def run_demo(spec_path: Path, out_dir: Path) -> str:
    """Assemble the page of ``spec_path`` into ``out_dir``; returns the Markdown."""
    spec = json.loads(spec_path.read_text())
    page = draw_page(spec)
    boxes = postprocess_layout(np.array(spec["detections"], float), (spec["width"], spec["height"]))
    options = PlanOptions()
    plan = plan_page(page, boxes, options)
    answers = {b.index: spec["answers"].get(",".join(map(str, b.bbox))) for b in plan.blocks if b.needs_model}
    for block in plan.blocks:
        if block.needs_model:
            print(f"  {block.prompt:<22} {block.label:<16} {block.image.shape[1]}x{block.image.shape[0]} px")
    result = build_page_result(plan, answers, page_index=0, width=spec["width"], height=spec["height"],
                               layout_boxes=boxes, options=options, page_count=1)
    markdown = page_markdown(result)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "page.md").write_text(markdown)
    (out_dir / "page.json").write_text(json.dumps(pruned_result(result), indent=2, ensure_ascii=False))
    for path, crop in result.images.items():
        (out_dir / path).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(crop).save(out_dir / path)
    for name, image in visualize(page, result).items():
        image.save(out_dir / f"{name}.jpg")
    return markdown
