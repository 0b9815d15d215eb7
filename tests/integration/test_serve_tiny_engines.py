"""The Serve application with the real GPU-path engines on tiny checkpoints: transformers
PP-DocLayoutV2 for layout and vLLM (CPU build) for recognition, over HTTP."""

from __future__ import annotations

import base64

import httpx
import pytest

from devtools.tiny_models import FIXED_ANSWER
from devtools.documents import text_pdf

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


def recognizer_process() -> tuple[int, str]:
    """The pid and temp dir of the tiny app's recognizer replica (the one that holds the vLLM engine)."""
    import os
    import tempfile

    import ray

    [actor] = [a for a in ray.util.list_named_actors(all_namespaces=True)
               if a["name"].startswith("SERVE_REPLICA::tiny#recognizer#")]
    handle = ray.get_actor(actor["name"], namespace=actor["namespace"])
    return ray.get(handle.__ray_call__.remote(lambda replica: (os.getpid(), tempfile.gettempdir())), timeout=60)


def test_a_sigkilled_engine_replica_leaves_nothing_once_the_next_one_starts(tiny_url):
    """A replica killed with SIGKILL cannot remove its vLLM socket folder, its error log or its
    EngineCore process; the replica Serve starts in its place removes the files (dead pid in their
    names), and the EngineCore follows its parent."""
    import os
    import signal
    import time
    from pathlib import Path

    import psutil

    pid, temp = recognizer_process()
    temp = Path(temp)
    left = [*temp.glob(f"vllm-rpc-{pid}-*"), *(temp / "paddleocr-vl-serve").glob(f"vllm-errors-{pid}.*")]
    children = psutil.Process(pid).children(recursive=True)
    assert len(left) == 3 and children  # the socket folder, the error log and its logging config; EngineCore
    os.kill(pid, signal.SIGKILL)
    with httpx.Client(base_url=tiny_url, timeout=60) as client:
        for _ in range(1200):  # Serve notices, starts a replica, its engine starts (bounded by count)
            if client.get("/health/ready").json()["errorMsg"] == "Ready":
                break
            time.sleep(0.5)
    assert recognizer_process()[0] != pid
    test_layout_and_vllm_engines_behind_the_api(tiny_url)  # the new replica reads pages
    assert not [p for p in left if p.exists()]
    assert not [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
