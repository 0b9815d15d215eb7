"""The Serve application with the real GPU-path engines on tiny checkpoints: transformers
PP-DocLayoutV2 for layout and vLLM (CPU build) for recognition, over HTTP."""

from __future__ import annotations

import base64

import httpx
import pytest

from deployments.tiny_models import FIXED_ANSWER
from documents import text_pdf

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def tiny_url(ray_session, tiny_layout_hf, tiny_vlm_fixed):
    from ray import serve

    from serve_app import build_app

    config = {
        "name": "tiny", "route_prefix": "/tiny",
        "layout": {"backend": "transformers", "model": str(tiny_layout_hf), "options": {"threshold": 0.0}},
        "recognizer": {"engine": "vllm", "model": str(tiny_vlm_fixed), "dtype": "float32", "cpu_kv_cache_gb": 0.25},
    }
    serve.run(build_app(config), name="tiny", route_prefix="/tiny")
    yield ray_session + "/tiny"
    serve.delete("tiny")


def test_layout_and_vllm_engines_behind_the_api(tiny_url):
    with httpx.Client(base_url=tiny_url, timeout=300) as client:
        assert client.get("/health/ready").json()["errorMsg"] == "Ready"
        body = client.post("/layout-parsing", json={"file": base64.b64encode(text_pdf(2)).decode(),
                                                     "visualize": False}).json()
        assert body["errorCode"] == 0, body
        entries = body["result"]["layoutParsingResults"]
        assert len(entries) == 2 and all(e["status"] == "ok" for e in entries)
        contents = [b["block_content"] for e in entries for b in e["prunedResult"]["parsing_res_list"]]
        assert FIXED_ANSWER in contents  # text read by the vLLM engine inside its Serve replica
        layout = entries[0]["prunedResult"]["layout_det_res"]["boxes"]
        assert layout and all(set(b) == {"cls_id", "label", "score", "coordinate", "order"} for b in layout)
