"""The Serve application on the simulated GPU engines over real HTTP: pages come back whole, the
engine's counters say what it did, and a client that leaves a stream aborts the engine's work."""

from __future__ import annotations

import base64
import json
import time

import httpx
import pytest

from documents import text_pdf

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def sim_url(ray_session):
    from ray import serve

    from serve_app import build_app

    config = {"name": "sim", "route_prefix": "/sim",
              "layout": {"backend": "simulated", "simulated_gpu": "rtx5060"},
              "recognizer": {"engine": "simulated", "simulated_gpu": "rtx5060"}}
    serve.run(build_app(config), name="sim", route_prefix="/sim")
    yield ray_session + "/sim"
    serve.delete("sim")


def test_simulated_engines_behind_the_api(sim_url):
    from ray import serve

    recognizer = serve.get_deployment_handle("recognizer", app_name="sim")
    recognizer.engine_stats.remote(True).result()
    with httpx.Client(base_url=sim_url, timeout=600) as client:
        body = client.post("/layout-parsing", json={"file": base64.b64encode(text_pdf(3)).decode(),
                                                     "visualize": False}).json()
    assert body["errorCode"] == 0, body
    entries = body["result"]["layoutParsingResults"]
    assert len(entries) == 3 and all(e["status"] == "ok" for e in entries)
    blocks = [b for e in entries for b in e["prunedResult"]["parsing_res_list"]]
    assert len(blocks) >= 3 * 13 and all(b["block_content"] for b in blocks if b["block_label"] == "text")
    stats = recognizer.engine_stats.remote().result()
    assert stats["profile"] == "rtx5060" and stats["finished"] >= 3 * 13 and stats["tokens_generated"] > 0
    assert 0 < stats["busy_fraction"] <= 1 and stats["aborted"] == 0


def test_leaving_a_stream_aborts_the_engine_work(sim_url):
    from ray import serve

    recognizer = serve.get_deployment_handle("recognizer", app_name="sim")
    body = {"file": base64.b64encode(text_pdf(40)).decode(), "visualize": False}
    with httpx.Client(base_url=sim_url, timeout=600) as client:
        with client.stream("POST", "/layout-parsing", json=body, headers={"Accept": "application/x-ndjson"}) as r:
            for line in r.iter_lines():
                if json.loads(line)["event"] == "page":
                    break  # leave after the first page
    for _ in range(240):  # the cancellation reaches the replica's engine asynchronously
        if recognizer.unfinished.remote().result() == 0:
            break
        time.sleep(0.5)
    stats = recognizer.engine_stats.remote().result()
    assert recognizer.unfinished.remote().result() == 0 and stats["aborted"] > 0
