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
    from deployments.tiny_models import build_tiny_layout_transformers

    return build_tiny_layout_transformers(tmp_path_factory.mktemp("tiny-layout-hf"))


@pytest.fixture(scope="session")
def tiny_layout_paddle(tmp_path_factory) -> Path:
    from deployments.tiny_models import build_tiny_layout_paddle

    return build_tiny_layout_paddle(tmp_path_factory.mktemp("tiny-layout-paddle"))


os.environ.setdefault("VLLM_HOST_IP", "127.0.0.1")
os.environ.setdefault("VLLM_PLUGINS", "")  # PaddleX registers a vLLM plugin that needs its genai extra


@pytest.fixture(scope="session")
def tiny_vlm(tmp_path_factory) -> Path:
    from deployments.tiny_models import build_tiny_vlm

    return build_tiny_vlm(tmp_path_factory.mktemp("tiny-vlm"))


@pytest.fixture(scope="session")
def tiny_vlm_fixed(tmp_path_factory) -> Path:
    from deployments.tiny_models import FIXED_ANSWER, build_tiny_vlm

    return build_tiny_vlm(tmp_path_factory.mktemp("tiny-vlm-fixed"), answer=FIXED_ANSWER)


@pytest.fixture(scope="session")
def tiny_vlm_loop(tmp_path_factory) -> Path:
    from deployments.tiny_models import FIXED_ANSWER, build_tiny_vlm

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


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def ray_session():
    """Ray and Serve, started once per test session on 127.0.0.1, stopped at the end."""
    import ray
    from ray import serve

    ray.init(_node_ip_address="127.0.0.1", include_dashboard=False, num_cpus=16, log_to_driver=False,
             runtime_env={"env_vars": {"HF_HUB_OFFLINE": "1", "VLLM_PLUGINS": "", "VLLM_HOST_IP": "127.0.0.1"}})
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    yield f"http://127.0.0.1:{port}"
    serve.shutdown()
    ray.shutdown()
