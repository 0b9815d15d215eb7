"""The container images, built and run for real: a Docker daemon of the test's own (Debian's
dockerd), a Debian 12 base made by debootstrap (no registry is reachable here), the wheelhouse
from `make wheelhouse`, `docker compose --profile cpu up --wait` from the repository's
compose.yaml, a PDF parsed over HTTP through the port published on 127.0.0.1, a bulk job run in
the container, and everything torn down with the host's network state restored. The GPU side is
checked as far as a machine without a GPU can: its compose service and the offline Dockerfile."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from conftest import free_port
from devtools.docker_daemon import DockerDaemon
from devtools.documents import paper_pdf, text_pdf
from serve_app.client import Client

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
BASE = "local/debian-python:bookworm"
PROJECT = "pvs-test"


def _step(name: str, start: float) -> float:
    print(f"[containers] {name}: {time.perf_counter() - start:.0f} s", flush=True)
    return time.perf_counter()


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("the container test starts its own dockerd, which needs root (CI runs as root)")
    docker = DockerDaemon(Path(tmp_path_factory.mktemp("docker"))).start()
    try:
        yield docker
    finally:
        docker.stop()


@pytest.fixture(scope="module")
def service(daemon, tmp_path_factory):
    """The CPU service up and healthy: (base URL, compose command, data directory)."""
    data = tmp_path_factory.mktemp("data")
    data.chmod(0o777)  # the image runs as uid 10001; the bind mount keeps the host's owner
    port = free_port()
    env = {"BASE": BASE, "DATA_DIR": str(data), "PADDLEOCR_VL_PUBLISH_PORT": str(port)}
    compose = ["compose", "--project-directory", str(ROOT), "-p", PROJECT, "--profile", "cpu"]
    start = time.perf_counter()
    made = subprocess.run(["make", "-s", "wheelhouse"], cwd=ROOT, capture_output=True, text=True, timeout=1800)
    assert made.returncode == 0, made.stderr[-3000:]
    start = _step("make wheelhouse", start)
    based = subprocess.run(["bash", "docker/local-base.sh", BASE], cwd=ROOT, env=daemon.env, capture_output=True,
                           text=True, timeout=900)
    assert based.returncode == 0, based.stdout + based.stderr
    start = _step("local base image", start)
    daemon.docker(*compose, "build", env=env)
    start = _step("image build", start)
    size = int(daemon.docker("image", "inspect", "-f", "{{.Size}}", "paddleocr-vl-serve:cpu").stdout)
    print(f"[containers] paddleocr-vl-serve:cpu is {size / 1e9:.2f} GB", flush=True)
    try:
        daemon.docker(*compose, "up", "-d", "--wait", "--wait-timeout", "600", env=env)
        _step("compose up --wait (healthy)", start)
        yield f"http://127.0.0.1:{port}", (compose, env), data, size
    finally:
        logs = daemon.docker(*compose, "logs", "--no-color", env=env, check=False).stdout
        print(logs[-3000:])
        daemon.docker(*compose, "down", "--volumes", "--timeout", "60", env=env, check=False)


def test_cpu_image_serves_the_api_on_loopback(service, daemon):
    url, (compose, env), _, size = service
    assert size < 2e9  # only what serving needs: no torch, vLLM or paddle
    missing = daemon.docker(*compose, "exec", "-T", "paddleocr-vl-cpu", "python", "-c",
                            "import importlib.util as u, os; print(os.getuid(), [m for m in "
                            "('torch', 'vllm', 'paddle', 'transformers') if u.find_spec(m)])", env=env).stdout
    assert missing.split() == ["10001", "[]"]
    assert httpx.get(f"{url}/health/ready", timeout=60).json()["errorMsg"] == "Ready"
    client = Client(url, timeout=600)
    for pdf, pages, text in ((text_pdf(3), 3, "Page 3:"), (paper_pdf(), 1, "A Study of Document Parsing")):
        results = client.parse_bytes(pdf, "doc.pdf", visualize=False)["layoutParsingResults"]
        assert len(results) == pages and text in results[-1]["markdown"]["text"]
    job_id = client.submit(text_pdf(2), "job.pdf")
    assert len(client.wait(job_id, poll_s=0.5)["layoutParsingResults"]) == 2
    jobs = daemon.docker(*compose, "exec", "-T", "paddleocr-vl-cpu", "ls", "/var/lib/paddleocr-vl/jobs",
                         env=env).stdout.split()
    assert jobs  # the job store is on the service's volume


def test_bulk_job_in_the_container(service, daemon):
    _, (compose, env), data, _ = service
    (data / "in").mkdir()
    (data / "in" / "a.pdf").write_bytes(text_pdf(2))
    (data / "in" / "b.pdf").write_bytes(paper_pdf())
    run = daemon.docker(*compose, "exec", "-T", "paddleocr-vl-cpu", "python", "-m", "serve_app.bulk",
                        "--input", "/data/in", "--output", "/data/out", "--serve-url", "http://127.0.0.1:8000",
                        env=env, timeout=900)
    summary = json.loads((data / "out" / "_SUMMARY.json").read_text())
    assert summary["by_status"] == {"ok": 2} and summary["pages"] == 3, run.stdout[-2000:]


def test_gpu_compose_service_and_offline_image(service, daemon, tmp_path):
    config = json.loads(daemon.docker("compose", "--project-directory", str(ROOT), "--profile", "gpu", "config",
                                      "--format", "json").stdout)
    gpu = config["services"]["paddleocr-vl-gpu"]
    assert gpu["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
    assert gpu["ports"][0]["host_ip"] == "127.0.0.1" and gpu["build"]["args"]["EXTRAS"] == "gpu,orientation"
    assert "recognizer.model=/models/PaddleOCR-VL-1.6" in gpu["build"]["args"]["OVERRIDES"]
    assert any(v["target"] == "/models" and v.get("read_only") for v in gpu["volumes"])
    # The offline variant bakes local directories into any image of ours (here the CPU one).
    for name in ("PaddleOCR-VL-1.6", "PP-DocLayoutV3"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text("{}")
    daemon.docker("build", "-q", "-f", str(ROOT / "docker" / "offline.Dockerfile"), "--build-arg",
                  "IMAGE=paddleocr-vl-serve:cpu", "-t", "paddleocr-vl-serve:offline-test", str(tmp_path))
    out = daemon.docker("run", "--rm", "paddleocr-vl-serve:offline-test", "sh", "-c",
                        "ls /models/PaddleOCR-VL-1.6 /models/PP-DocLayoutV3; echo $HF_HUB_OFFLINE").stdout.split()
    assert out.count("config.json") == 2 and out[-1] == "1"
