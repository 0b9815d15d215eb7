"""Async jobs and streamed pages over real HTTP on 127.0.0.1, on the offline CPU default (real
PP-Layout and PP-OCRv6 weights), with two ingress replicas and the real job manager actor: results
equal the synchronous call's, cancellation reaches the engine, a job outlives the restart of an
ingress replica and of the job manager, limits and expiry answer with their status codes."""

from __future__ import annotations

import base64
import json
import time

import httpx
import pytest

from devtools.documents import text_pdf

pytestmark = [pytest.mark.integration, pytest.mark.slow]
B64 = lambda data: base64.b64encode(data).decode()  # noqa: E731
from conftest import JOBS_KEY as KEY, JOBS_TTL as TTL


@pytest.fixture(scope="module")
def client(jobs_url):
    with httpx.Client(base_url=jobs_url, timeout=600, headers=KEY) as c:
        yield c


def noise_png(side: int) -> bytes:
    """An image that does not compress (side² × 3 bytes as PNG, ~1.9 MB at 800)."""
    import io

    import numpy as np
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.random.RandomState(0).randint(0, 255, (side, side, 3), np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def submit(client, data: bytes, **options) -> str:
    response = client.post("/jobs/layout-parsing", json={"file": B64(data), **options})
    body = response.json()
    assert response.status_code == 202 and body["errorCode"] == 0, body
    assert body["result"]["status"] in ("queued", "running")
    return body["result"]["jobId"]


def status(client, job_id: str) -> dict:
    """The job's status; a replica or the manager restarting is waited out (bounded by count)."""
    for _ in range(120):
        try:
            response = client.get(f"/jobs/{job_id}")
        except httpx.TransportError:
            time.sleep(1)
            continue
        if response.status_code < 500:
            return response.json()
        time.sleep(1)
    raise AssertionError(f"no status for job {job_id}")


def wait_for(client, job_id: str, until, polls: int = 1200) -> dict:
    """Poll the status until ``until(result)`` holds; the poll count bounds the wait (safety net)."""
    for _ in range(polls):
        body = status(client, job_id)
        if until(body):
            return body
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} never reached the state: {body}")


def finished(body: dict) -> bool:
    return body["errorCode"] != 0 or body["result"]["status"] not in ("queued", "running")


def test_a_job_answers_what_the_synchronous_call_answers(client):
    data = text_pdf(6)
    job_id = submit(client, data, visualize=False, logId="job-log")
    done = wait_for(client, job_id, finished)["result"]
    assert (done["status"], done["pagesDone"], done["pagesTotal"], done["failedPages"]) == ("done", 6, 6, [])
    assert done["etaSeconds"] is None and done["elapsedSeconds"] > 0
    job = client.get(f"/jobs/{job_id}/result").json()
    sync = client.post("/layout-parsing", json={"file": B64(data), "visualize": False, "logId": "job-log"}).json()
    assert job == sync and job["errorCode"] == 0 and len(job["result"]["layoutParsingResults"]) == 6


def test_pages_stream_in_order_and_the_first_arrives_long_before_the_last(client):
    """100 pages as NDJSON: every page in order; when the first page's line was written the
    server had finished only a fraction of the document (counted by the server, not timed)."""
    body = {"file": B64(text_pdf(100, "Page {n} of the streamed one.")), "visualize": False}
    started = time.perf_counter()
    events, first_at = [], None
    with client.stream("POST", "/layout-parsing", json=body, headers={"Accept": "application/x-ndjson"}) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("application/x-ndjson")
        for line in response.iter_lines():
            events.append(json.loads(line))
            if events[-1]["event"] == "page" and first_at is None:
                first_at = time.perf_counter() - started
    total = time.perf_counter() - started
    print(f"100-page stream: first page after {first_at:.1f} s, all after {total:.1f} s")
    assert [e["event"] for e in events] == ["start"] + ["page"] * 100 + ["done"]
    assert events[0]["pagesTotal"] == 100 and [e["pageIndex"] for e in events[1:-1]] == list(range(100))
    assert events[1]["pagesDone"] <= 40 and events[-2]["pagesDone"] == 100
    assert "Page 100 of the streamed one" in events[-2]["result"]["markdown"]["text"]
    assert events[-1]["errorCode"] == 0 and events[-1]["result"]["failedPages"] == []

    sse = client.post("/layout-parsing", json={"file": B64(text_pdf(2)), "visualize": False},
                      headers={"Accept": "text/event-stream"})
    assert sse.headers["content-type"].startswith("text/event-stream")
    assert [b.split("\n")[0] for b in sse.text.strip().split("\n\n")] == \
        ["event: start", "event: page", "event: page", "event: done"]
    bad = client.post("/layout-parsing", json={"file": B64(text_pdf(2)), "pageRanges": "7"},
                      headers={"Accept": "application/x-ndjson"})
    assert bad.status_code == 422 and "outside 1-2" in bad.json()["errorMsg"]  # before any event: the envelope


def test_cancel_mid_way_aborts_the_engine_work(client):
    from ray import serve

    job_id = submit(client, text_pdf(40), visualize=False, textLayer="off")
    wait_for(client, job_id, lambda b: b["result"]["pagesDone"] >= 1)
    cancelled = client.delete(f"/jobs/{job_id}").json()["result"]
    assert cancelled["status"] == "cancelled" and cancelled["pagesDone"] < 40
    recognizer = serve.get_deployment_handle("recognizer", app_name="jobs")
    for _ in range(240):  # cancellation reaches the replica's engine asynchronously
        if recognizer.unfinished.remote().result() == 0:
            break
        time.sleep(0.5)
    assert recognizer.unfinished.remote().result() == 0
    answer = client.get(f"/jobs/{job_id}/result")
    assert answer.status_code == 409 and "cancelled" in answer.json()["errorMsg"]
    assert status(client, job_id)["result"]["pagesDone"] == cancelled["pagesDone"]  # nothing ran after


def test_a_job_outlives_an_ingress_replica_and_the_job_manager(client):
    import ray

    from serve_app.jobs.manager import actor_name
    from serve_app.config import AppConfig

    job_id = submit(client, text_pdf(12, "Page {n} of the resumed one."), visualize=False, textLayer="off")
    wait_for(client, job_id, lambda b: b["result"]["pagesDone"] >= 2)
    replicas = [a for a in ray.util.list_named_actors(all_namespaces=True)
                if a["name"].startswith("SERVE_REPLICA::jobs#ingress#")]
    assert len(replicas) == 2
    ray.kill(ray.get_actor(replicas[0]["name"], namespace=replicas[0]["namespace"]), no_restart=True)
    manager = ray.get_actor(actor_name(AppConfig(name="jobs")), namespace="paddleocr-vl-serve")
    ray.kill(manager, no_restart=False)  # Ray restarts it; it resumes from the job directory
    done = wait_for(client, job_id, finished)["result"]
    assert done["status"] == "done" and done["resumedAfterRestart"] == 1 and done["pagesDone"] == 12
    entries = client.get(f"/jobs/{job_id}/result").json()["result"]["layoutParsingResults"]
    assert [e["status"] for e in entries] == ["ok"] * 12
    for n, entry in enumerate(entries, 1):
        assert f"{n} of the resumed one" in entry["markdown"]["text"]


def test_auth_limits_and_expiry(client, jobs_url):
    with httpx.Client(base_url=jobs_url, timeout=60) as anonymous:
        assert anonymous.post("/jobs/layout-parsing", json={"file": B64(text_pdf(1))}).status_code == 401
        assert anonymous.get("/jobs/whatever").status_code == 401
    assert client.get("/jobs/0123").status_code == 404
    big = client.post("/jobs/layout-parsing", json={"file": B64(noise_png(800))})
    assert big.status_code == 507 and "max_stored_mb" in big.json()["errorMsg"]

    slow = [submit(client, text_pdf(30), visualize=False, textLayer="off") for _ in range(3)]
    refused = client.post("/jobs/layout-parsing", json={"file": B64(text_pdf(1))})
    assert refused.status_code == 429 and refused.headers["retry-after"] and "max_active_per_client" in refused.text
    for job_id in slow:
        assert client.delete(f"/jobs/{job_id}").json()["result"]["status"] == "cancelled"

    kept, deleted = (submit(client, text_pdf(1), visualize=False) for _ in range(2))
    for job_id in (kept, deleted):
        wait_for(client, job_id, finished)
        assert client.get(f"/jobs/{job_id}/result").status_code == 200
    assert client.delete(f"/jobs/{deleted}").json()["result"]["deleted"] is True  # a finished job: deleted
    assert client.get(f"/jobs/{deleted}").status_code == 404
    gone = wait_for(client, kept, lambda b: b["errorCode"] == 404, polls=4 * TTL + 60)  # expired after the TTL
    assert "ttl_s" in gone["errorMsg"]


def test_client_jobs_and_stream(jobs_url):
    from serve_app.client import Client, ServiceError

    client = Client(jobs_url, api_key="k")
    data = text_pdf(3)
    job_id = client.submit(data, "doc.pdf")
    seen = []
    result = client.wait(job_id, seen.append, poll_s=0.2)
    assert seen[-1]["status"] == "done" and result == client.parse_bytes(data, "doc.pdf")
    events = list(client.stream(data, "doc.pdf"))
    assert [e["event"] for e in events] == ["start", "page", "page", "page", "done"]
    assert [e["result"] for e in events[1:-1]] == result["layoutParsingResults"]
    try:
        client.result("nope")
        raise AssertionError("expected a 404")
    except ServiceError as exc:
        assert exc.status == 404


def test_cli_uses_jobs_for_long_documents_and_resumes_a_stopped_run(jobs_url, tmp_path, capsys):
    """A run stopped after submitting left FILE.job.json: the next run waits for that job (no new
    submission) and writes the outputs; --stream prints pages as they come."""
    import ray

    from serve_app.__main__ import main
    from serve_app.client import Client
    from serve_app.config import AppConfig
    from serve_app.jobs.manager import actor_name

    path = tmp_path / "long.pdf"
    path.write_bytes(text_pdf(4, "Page {n} of the CLI one."))
    job_id = Client(jobs_url, api_key="k").submit(path)
    manager = ray.get_actor(actor_name(AppConfig(name="jobs")), namespace="paddleocr-vl-serve")
    jobs_before = set(ray.get(manager.job_ids.remote()))
    (tmp_path / "long.pdf.job.json").write_text(json.dumps({"jobId": job_id}))
    assert main(["parse", str(path), "--url", jobs_url, "--api-key", "k", "--jobs-over", "2"]) == 0
    assert not (tmp_path / "long.pdf.job.json").exists()
    # The command submitted no job of its own (earlier tests' jobs may expire meanwhile: a subset).
    assert set(ray.get(manager.job_ids.remote())) <= jobs_before
    saved = json.loads(path.with_suffix(".json").read_text())
    assert saved == Client(jobs_url, api_key="k").result(job_id)  # the picked-up job's result
    assert "Page 4 of the CLI one" in path.with_suffix(".md").read_text()

    assert main(["parse", str(path), "--url", jobs_url, "--api-key", "k", "--stream"]) == 0
    out = capsys.readouterr().out
    assert out.index("--- page 1 ---") < out.index("--- page 4 ---") and "Page 4 of the CLI one" in out
