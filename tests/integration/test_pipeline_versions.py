"""Pipelines v1.5 and v1.6 end to end on real engines with tiny checkpoints: PP-DocLayoutV3
(transformers) with its masks and a 1.5/1.6-shaped PaddleOCR-VL (transformers, and vLLM for the
chat template). Over HTTP and in a bulk job the same document gives the same Markdown and
``prunedResult``, with polygons in the layout result, the blocks and the crops."""

from __future__ import annotations

import base64
import io

import httpx
import numpy as np
import pytest
from PIL import Image
from test_options_parity import over_http, through_bulk

from deployments.datamodel import LayoutBox, PageImage, PageStatus
from deployments.pipelines import PIPELINES
from deployments.recognizer.config import RecognizerConfig
from deployments.recognizer.recognizer import Recognizer
from devtools.documents import text_pdf
from devtools.tiny_models import FIXED_ANSWER

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.mark.parametrize("engine", ["transformers", "vllm"])
def test_a_bare_16_checkpoint_reads_with_its_pipelines_template(run, engine, tiny_vlm_fixed_16_bare):
    """A 1.6 checkpoint without a chat template (a fine-tuning output) reads with the 1.5/1.6
    template (``Assistant:\\n``) under pipeline v1.6, and not under v1's (``Assistant: ``): the
    version's template is what the engine renders, on both engines."""
    page = PageImage("doc", 0, 1, np.full((200, 300, 3), 255, np.uint8))
    boxes = [LayoutBox(22, "text", 0.9, (10, 10, 290, 60), 1)]
    texts = {}
    for version in ("v1.6", "v1"):
        config = RecognizerConfig(engine=engine, model=str(tiny_vlm_fixed_16_bare), dtype="float32",
                                  cpu_kv_cache_gb=0.25, pipeline=version)
        recognizer = Recognizer(config)
        run(recognizer.start())
        try:
            result = run(recognizer.recognize(page, boxes))
        finally:
            run(recognizer.shutdown())
        assert result.status is PageStatus.OK
        texts[version] = result.blocks[0].content
    assert texts["v1.6"] == FIXED_ANSWER
    assert texts["v1"] != FIXED_ANSWER


@pytest.fixture(scope="module", params=["v1.5", "v1.6"])
def version_app(request, ray_session, tiny_layout_v3_hf, tiny_vlm_fixed_16):
    """(version, its app config, its URL): a Serve app of that pipeline on tiny checkpoints. One page
    per layout forward on both paths (CPU kernels round scores per batch size in the last digits)."""
    from ray import serve

    from serve_app import build_app

    version = request.param
    config = {"pipeline": version,
              "layout": {"backend": "transformers", "model": str(tiny_layout_v3_hf), "batch_size": 1,
                         "options": {"threshold": 0.0}},
              "recognizer": {"engine": "transformers", "model": str(tiny_vlm_fixed_16), "dtype": "float32"}}
    name = "p" + version.replace(".", "")
    serve.run(build_app({**config, "name": name, "route_prefix": f"/{name}"}), name=name, route_prefix=f"/{name}")
    yield version, config, f"{ray_session}/{name}"
    serve.delete(name)


def test_health_names_the_pipeline(version_app):
    version, _, url = version_app
    result = httpx.get(f"{url}/health", timeout=60).json()["result"]
    spec = PIPELINES[version]
    assert (result["pipeline"], result["layoutModel"], result["vlmModel"]) == (spec.name, "PP-DocLayoutV3", spec.vlm_name)


def test_same_bytes_over_http_and_in_bulk_with_polygons(version_app, tmp_path):
    version, config, url = version_app
    pdf = text_pdf(2, "Version page {n}: words to read. " * 30)
    entries = over_http(url, pdf, {"visualize": True, "layoutShapeMode": "poly"})
    row = through_bulk(tmp_path, config, pdf, {"layoutShapeMode": "poly"})
    assert row["status"] == "ok" and row["markdown"] == [e["markdown"]["text"] for e in entries]
    pruned = [e["prunedResult"] for e in entries]
    import json

    assert [json.loads(p) for p in row["pruned_result"]] == pruned
    for page in pruned:
        assert page["model_settings"]["return_layout_polygon_points"] is True
        boxes = page["layout_det_res"]["boxes"]
        assert boxes and all(len(b["polygon_points"]) >= 4 for b in boxes)
        assert all("block_polygon_points" in b for b in page["parsing_res_list"])
    outlines = [b["polygon_points"] for p in pruned for b in p["layout_det_res"]["boxes"]]
    assert any(len(points) > 4 for points in outlines)  # traced outlines, not rectangles


def _drawn(entry: dict) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(entry["outputImages"]["layout_det_res"]))))


def test_rect_shape_mode_gives_rectangles_and_poly_draws_outlines(version_app):
    _, _, url = version_app
    pdf = text_pdf(1, "Rectangles only. " * 40)
    (rect,) = over_http(url, pdf, {"layoutShapeMode": "rect", "visualize": True})
    page = rect["prunedResult"]
    assert page["model_settings"]["return_layout_polygon_points"] is False
    assert all("polygon_points" not in b for b in page["layout_det_res"]["boxes"])
    assert all("block_polygon_points" not in b for b in page["parsing_res_list"])
    (poly,) = over_http(url, pdf, {"layoutShapeMode": "poly", "visualize": True})
    assert [b["coordinate"] for b in poly["prunedResult"]["layout_det_res"]["boxes"]] == [
        b["coordinate"] for b in page["layout_det_res"]["boxes"]]  # the same regions...
    assert not np.array_equal(_drawn(rect), _drawn(poly))  # ...drawn as their outlines


def test_streamed_pages_and_a_job_carry_the_same_polygons(version_app):
    """The streamed and job paths are the same page path: same prunedResult, polygons included."""
    import json
    import time

    _, _, url = version_app
    pdf = text_pdf(2, "Streamed page {n}: words to read. " * 30)
    request = {"layoutShapeMode": "poly"}
    blocking = [e["prunedResult"] for e in over_http(url, pdf, request)]
    body = {"file": base64.b64encode(pdf).decode(), "fileType": 0, "visualize": False, **request}
    with httpx.Client(base_url=url, timeout=600) as client:
        lines = client.post("/layout-parsing", json=body, headers={"Accept": "application/x-ndjson"}).text.splitlines()
        events = [json.loads(line) for line in lines if line.strip()]
        streamed = [e["result"]["prunedResult"] for e in events if e.get("event") == "page"]
        job = client.post("/jobs/layout-parsing", json=body).json()["result"]["jobId"]
        for _ in range(600):  # bounded poll: a safety net, not a measure
            if client.get(f"/jobs/{job}").json()["result"]["status"] in ("done", "failed"):
                break
            time.sleep(0.5)
        result = client.get(f"/jobs/{job}/result").json()["result"]
    from_job = [e["prunedResult"] for e in result["layoutParsingResults"]]
    assert streamed == blocking == from_job
    assert any("block_polygon_points" in b for page in blocking for b in page["parsing_res_list"])
