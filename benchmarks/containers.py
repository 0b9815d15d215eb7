"""Container figures: wheelhouse, image build (no layer cache), image size, start to healthy, and
a parse through the published port, with the CPU image on a Docker daemon of the benchmark's own
(as the container test does: Debian's dockerd, a debootstrap base; no registry is reachable here).

    .venv/bin/python -m benchmarks.containers          # root, with `make docker-tools` installed

Writes benchmarks/results/containers.json."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.harness import results
from benchmarks.harness.corpora import text_pdf
from benchmarks.harness.results import ROOT
from benchmarks.harness.server import free_port
from devtools.docker_daemon import DockerDaemon
from serve_app.client import Client

BASE = "local/debian-python:bookworm"


def timed(step, figures: dict, name: str):
    start = time.perf_counter()
    out = step()
    figures[name] = round(time.perf_counter() - start, 1)
    print(f"{name:<28} {figures[name]:>7.1f} s", flush=True)
    return out


def main() -> int:
    figures: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        daemon = DockerDaemon(Path(tmp) / "docker").start()
        data = Path(tmp) / "data"
        data.mkdir()
        data.chmod(0o777)
        port = free_port()
        env = {"BASE": BASE, "DATA_DIR": str(data), "PADDLEOCR_VL_PUBLISH_PORT": str(port)}
        compose = ["compose", "--project-directory", str(ROOT), "-p", "pvs-bench", "--profile", "cpu"]
        try:
            timed(lambda: subprocess.run(["make", "-s", "wheelhouse"], cwd=ROOT, check=True), figures,
                  "wheelhouse_s")
            figures["wheelhouse_mb"] = round(sum(f.stat().st_size for f in (ROOT / "wheelhouse" / "cpu").iterdir())
                                             / 1e6)
            cold = {**daemon.env, "CACHE": str(Path(tmp) / "cache")}  # debootstrap as on a fresh machine
            timed(lambda: subprocess.run(["bash", "docker/local-base.sh", BASE], cwd=ROOT, env=cold, check=True),
                  figures, "local_base_s")
            timed(lambda: daemon.docker(*compose, "build", "--no-cache", env=env), figures, "image_build_s")
            figures["image_mb"] = round(int(daemon.docker("image", "inspect", "-f", "{{.Size}}",
                                                          "paddleocr-vl-serve:cpu").stdout) / 1e6)
            figures["base_image_mb"] = round(int(daemon.docker("image", "inspect", "-f", "{{.Size}}",
                                                               BASE).stdout) / 1e6)
            timed(lambda: daemon.docker(*compose, "up", "-d", "--wait", env=env), figures, "up_to_healthy_s")
            client = Client(f"http://127.0.0.1:{port}", timeout=600)
            pdf = text_pdf(20)
            timed(lambda: client.parse_bytes(pdf, "a.pdf", visualize=False), figures, "first_20_pages_s")
            timed(lambda: client.parse_bytes(pdf, "a.pdf", visualize=False), figures, "next_20_pages_s")
            figures["pages_per_s"] = round(20 / figures["next_20_pages_s"], 2)
            timed(lambda: daemon.docker(*compose, "down", "--volumes", env=env), figures, "down_s")
        finally:
            daemon.docker(*compose, "down", "--volumes", env=env, check=False)
            daemon.stop()
    figures["setup"] = "Docker from Debian's packages, a debootstrap Debian 12 base, no GPU"
    results.write("containers", figures, "cpu image")
    return 0


if __name__ == "__main__":
    sys.exit(main())
