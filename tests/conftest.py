"""Shared fixtures. Tests never reach a model hub: the tiny checkpoints are built here."""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before transformers is imported anywhere
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
sys.path.insert(0, str(Path(__file__).parent))

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny_layout_hf(tmp_path_factory) -> Path:
    from devtools.tiny_models import build_tiny_layout_transformers

    return build_tiny_layout_transformers(tmp_path_factory.mktemp("tiny-layout-hf"))


@pytest.fixture(scope="session")
def tiny_layout_paddle(tmp_path_factory) -> Path:
    from devtools.tiny_models import build_tiny_layout_paddle

    return build_tiny_layout_paddle(tmp_path_factory.mktemp("tiny-layout-paddle"))


@pytest.fixture(scope="session")
def tiny_layout_v3_hf(tmp_path_factory) -> Path:
    from devtools.tiny_models import build_tiny_layout_v3_transformers

    return build_tiny_layout_v3_transformers(tmp_path_factory.mktemp("tiny-layout-v3-hf"))


@pytest.fixture(scope="session")
def tiny_layout_v3_paddle(tmp_path_factory) -> Path:
    from devtools.tiny_models import build_tiny_layout_v3_paddle

    return build_tiny_layout_v3_paddle(tmp_path_factory.mktemp("tiny-layout-v3-paddle"))


os.environ.setdefault("VLLM_HOST_IP", "127.0.0.1")
os.environ.setdefault("VLLM_PLUGINS", "")  # PaddleX registers a vLLM plugin that needs its genai extra


@pytest.fixture(scope="session")
def tiny_vlm(tmp_path_factory) -> Path:
    from devtools.tiny_models import build_tiny_vlm

    return build_tiny_vlm(tmp_path_factory.mktemp("tiny-vlm"))


@pytest.fixture(scope="session")
def tiny_vlm_fixed(tmp_path_factory) -> Path:
    from devtools.tiny_models import FIXED_ANSWER, build_tiny_vlm

    return build_tiny_vlm(tmp_path_factory.mktemp("tiny-vlm-fixed"), answer=FIXED_ANSWER)


@pytest.fixture(scope="session")
def tiny_vlm_loop(tmp_path_factory) -> Path:
    from devtools.tiny_models import FIXED_ANSWER, build_tiny_vlm

    return build_tiny_vlm(tmp_path_factory.mktemp("tiny-vlm-loop"), answer=FIXED_ANSWER, loop=True)


class LoopRunner:
    """One event loop for a module's async engine (AsyncLLM is bound to the loop it starts in)."""

    def __init__(self):
        import asyncio

        self.loop = asyncio.new_event_loop()

    def __call__(self, coro):
        return self.loop.run_until_complete(coro)


@pytest.fixture(scope="module")
def run():
    runner = LoopRunner()
    yield runner
    runner.loop.close()


os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # token auth would refuse the Jobs CLI in tests
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # drivers keep a 127.0.0.1 node IP (ray_cluster.py)


from devtools.ray_cluster import free_port  # noqa: E402 (a loopback port: tests import it from here)


@pytest.fixture(scope="session")
def ray_cluster():
    """A two-node Ray cluster on 127.0.0.1, started once per test session and stopped at its end: a
    CPU head (16 CPUs) and a second node standing in for a GPU worker (4 CPUs, 2 declared GPUs that
    CUDA never sees, so stages placed there run on CPU; the resource ``second_node``)."""
    from devtools.ray_cluster import LocalCluster

    cluster = LocalCluster().start(head_cpus=16, node_cpus=4, node_gpus=2)
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def ray_session(ray_cluster):
    """This process connected to the session's cluster, with Serve (HTTP on the head only)."""
    import ray
    from ray import serve

    ray.init(address=ray_cluster.address, log_to_driver=False)
    port = free_port()
    serve.start(proxy_location="HeadOnly", http_options={"host": "127.0.0.1", "port": port})
    yield f"http://127.0.0.1:{port}"
    serve.shutdown()
    ray.shutdown()


def meeting_in_pairs(targets: list) -> list:
    """``targets`` wrapped so that every call first waits at one two-party barrier: calls made one
    after another never meet and the barrier breaks (parallelism shown by count; the timeout is a
    safety net, not a measure)."""
    import threading

    barrier = threading.Barrier(2, timeout=120)

    def wrap(target):
        def call(*args):
            barrier.wait()
            return target(*args)
        return call

    return [wrap(t) for t in targets]


#: The session's application with an API key and the job API (test_jobs.py, test_ui.py).
JOBS_KEY = {"Authorization": "Bearer k"}
JOBS_TTL = 20


@pytest.fixture(scope="session")
def jobs_url(ray_session, tmp_path_factory):
    import ray
    from ray import serve

    from serve_app import build_app
    from serve_app.config import AppConfig
    from serve_app.jobs.manager import actor_name

    config = AppConfig(name="jobs", route_prefix="/j",
                       ingress={"api_key": "k", "page_window": 4},
                       jobs={"store": str(tmp_path_factory.mktemp("jobs")), "ttl_s": JOBS_TTL, "max_active_per_client": 3,
                             "max_stored_mb": 1.0},
                       deployments={"ingress": {"num_replicas": 2}})
    serve.run(build_app(config), name="jobs", route_prefix="/j")
    yield f"{ray_session}/j"
    serve.delete("jobs")
    try:  # the detached job manager outlives the application: stop it
        ray.kill(ray.get_actor(actor_name(config), namespace="paddleocr-vl-serve"), no_restart=True)
    except ValueError:
        pass  # no job was submitted


@pytest.fixture(scope="session")
def tiny_vlm_fixed_16(tmp_path_factory) -> Path:
    """The fixed-answer checkpoint of a 1.5/1.6 model: same config, the 1.5/1.6 chat template."""
    from devtools.tiny_models import FIXED_ANSWER, build_tiny_vlm

    return build_tiny_vlm(tmp_path_factory.mktemp("tiny-vlm-fixed-16"), answer=FIXED_ANSWER, version="v1.6")


@pytest.fixture(scope="session")
def tiny_vlm_fixed_16_bare(tmp_path_factory) -> Path:
    """As ``tiny_vlm_fixed_16`` without a chat template (a fine-tuning output): it answers only
    when the engine uses the 1.5/1.6 pipeline's template."""
    from devtools.tiny_models import FIXED_ANSWER, build_tiny_vlm

    return build_tiny_vlm(tmp_path_factory.mktemp("tiny-vlm-fixed-16-bare"), answer=FIXED_ANSWER, version="v1.6",
                          template=False)
