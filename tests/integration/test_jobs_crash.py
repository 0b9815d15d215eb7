"""The job manager killed at every step of a job's writes, and its node lost (``serve_app/jobs/``):
real HTTP on 127.0.0.1, the real detached manager actor that Ray restarts, real SIGKILLs sent by the
manager to itself at named crash points (``serve_app/crashpoints.py``, once: a restarted manager goes
on), and a real node of the session's cluster killed. Every job finishes with every page once, and a
submission repeated after the manager died in it is still one job."""

from __future__ import annotations

import base64
import time
from pathlib import Path

import httpx
import pytest

from devtools.documents import text_pdf

pytestmark = [pytest.mark.integration, pytest.mark.slow]
APP = "jobscrash"

#: Each step's end, in the order a job reaches them (``:tmp``: written under a temporary name only).
STEPS = ["jobs:record", "jobs:input", "jobs:record#3", "jobs:page:tmp#2", "jobs:page#2", "jobs:result:tmp",
         "jobs:result", "jobs:finished"]


@pytest.fixture(scope="module")
def app(ray_session, tmp_path_factory):
    from ray import serve

    from serve_app import build_app
    from serve_app.config import AppConfig

    config = AppConfig(name=APP, route_prefix="/jc", jobs={"store": str(tmp_path_factory.mktemp("jobs-crash"))})
    serve.run(build_app(config), name=APP, route_prefix="/jc")
    with httpx.Client(base_url=f"{ray_session}/jc", timeout=600) as client:
        yield config, client
    serve.delete(APP)
    stop_manager(config)


def stop_manager(config) -> None:
    """The manager gone for good, and its name free (bounded by count)."""
    import ray

    from serve_app.jobs.manager import actor_name

    for _ in range(120):
        try:
            ray.kill(ray.get_actor(actor_name(config), namespace="paddleocr-vl-serve"), no_restart=True)
        except ValueError:
            return
        time.sleep(0.5)
    raise AssertionError("the job manager's name was never freed")


def start_manager(config, **options):
    """A fresh manager with Ray actor ``options``; the ingress finds it by name at its next call."""
    from ray import serve

    from serve_app.jobs.manager import get_or_create

    stop_manager(config)
    stages = [serve.get_deployment_handle(name, app_name=APP) for name in ("renderer", "layout", "recognizer")]
    return get_or_create(*stages, config, **options)


def run_job(client, pages: int) -> str:
    body = {"file": base64.b64encode(text_pdf(pages, "Page {n} of the crashed one.")).decode(), "visualize": False}
    response = client.post("/jobs/layout-parsing", json=body)
    assert response.status_code == 202, response.text
    return response.json()["result"]["jobId"]


def poll(client, job_id: str, until, polls: int = 1200) -> dict:
    """The job's status until ``until(status)``; a restarting manager (503) is waited out by count."""
    for _ in range(polls):
        response = client.get(f"/jobs/{job_id}")
        if response.status_code == 200 and until(response.json()["result"]):
            return response.json()["result"]
        time.sleep(0.5)
    raise AssertionError(f"job {job_id}: {response.status_code} {response.text[:2000]}")


def check_every_page_once(client, job_id: str, pages: int) -> dict:
    status = poll(client, job_id, lambda s: s["status"] not in ("queued", "running"))
    assert (status["status"], status["pagesDone"], status["pagesTotal"]) == ("done", pages, pages), status
    entries = client.get(f"/jobs/{job_id}/result").json()["result"]["layoutParsingResults"]
    assert len(entries) == pages and [e["status"] for e in entries] == ["ok"] * pages
    for n, entry in enumerate(entries, 1):
        assert f"Page {n} of the crashed one" in entry["markdown"]["text"]
    return status


@pytest.mark.parametrize("step", STEPS)
def test_a_manager_killed_at_each_step_finishes_the_job_with_every_page_once(app, tmp_path, step):
    import ray

    config, client = app
    fired = tmp_path / "fired"
    manager = start_manager(config, runtime_env={"env_vars": {
        "PADDLEOCR_VL_CRASH": f"{step}=KILL", "PADDLEOCR_VL_CRASH_ONCE": str(fired)}})
    earlier = set(ray.get(manager.job_ids.remote()))  # the jobs of the tests before (the store is shared)
    job_id = run_job(client, 3)
    check_every_page_once(client, job_id, 3)
    assert fired.exists(), f"{step} never reached"
    assert set(ray.get(manager.job_ids.remote())) - earlier == {job_id}  # one submission, one job
    assert not list((Path(config.jobs.store) / job_id / "pages").glob("*")), "a finished job keeps no page files"


def test_a_job_finishes_on_another_node_when_the_managers_node_is_lost(app, ray_cluster):
    """The job store is a directory both loopback nodes reach (on a real cluster: s3:// or a shared
    mount); the manager runs on a third node added for the test, which is then SIGKILLed whole."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    config, client = app
    node = ray_cluster.add_node("jobs-node", cpus=1, resources={"jobs_node": 1})
    node_id = next(n["node_id"] for n in ray_cluster.nodes() if "jobs_node" in n["resources_total"])
    for _ in range(240):  # the scheduler's view of the new node can lag the node list (bounded by count)
        if ray.available_resources().get("jobs_node"):
            break
        time.sleep(0.5)

    def where(manager):
        return ray.get(manager.__ray_call__.remote(lambda _: ray.get_runtime_context().get_node_id()), timeout=300)

    for _ in range(60):  # soft affinity: until the actor scheduler takes the new node, it places the
        manager = start_manager(config, scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=True))
        if where(manager) == node_id:  # manager elsewhere; then place it again (bounded by count)
            break
        time.sleep(1)
    assert where(manager) == node_id
    job_id = run_job(client, 12)
    poll(client, job_id, lambda s: s["pagesDone"] >= 2)
    ray_cluster.kill_node(node)
    status = check_every_page_once(client, job_id, 12)
    assert status["resumedAfterRestart"] >= 1 and where(manager) != node_id  # restarted once, or again while the node died
