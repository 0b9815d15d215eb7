"""Throughput and latency through HTTP for 1, 4 and 16 concurrent clients, against the same
stages run in-process one page after another (the official basic server's design: concurrency 1).

Two setups on 127.0.0.1 with generated one-page documents:
- ``lite``: the offline CPU configuration (real PP-Layout CDLA + PP-OCRv6 weights, CPU-bound);
- ``tiny``: the GPU-path engines on tiny checkpoints (transformers PP-DocLayoutV2, vLLM CPU build,
  32 new tokens per block): what continuous batching across requests buys.
Prints a table and writes benchmarks/results/serve_throughput_<setup>.json.

    .venv/bin/python benchmarks/serve_throughput.py [--setup lite|tiny] [--docs 24]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("VLLM_PLUGINS", "")
os.environ.setdefault("VLLM_HOST_IP", "127.0.0.1")

import httpx  # noqa: E402
import numpy as np  # noqa: E402

from devtools.documents import paper_pdf, text_pdf  # noqa: E402


def documents(n: int) -> list[bytes]:
    return [paper_pdf() if i % 2 else text_pdf(1, f"Document {i}, page {{n}}: " + "words to read here. " * 12)
            for i in range(n)]


def app_config(setup: str) -> dict:
    cpus = {"renderer": {"num_cpus": 0.25}, "ingress": {"num_cpus": 0.25}}
    if setup == "lite":
        return {**cpus, "layout": {"num_cpus": 0.25}, "recognizer": {"num_cpus": 0.25}}
    import tempfile

    from devtools.tiny_models import build_tiny_layout_transformers, build_tiny_vlm

    tmp = Path(tempfile.mkdtemp())
    return {**cpus, "layout": {"backend": "transformers", "model": str(build_tiny_layout_transformers(tmp / "l")),
                               "num_cpus": 0.25},
            "recognizer": {"engine": "vllm", "model": str(build_tiny_vlm(tmp / "v")), "cpu_kv_cache_gb": 1.0,
                           "max_new_tokens": 32, "num_cpus": 0.25}}


def sequential(docs: list[bytes], config: dict) -> float:
    """Pages/s of render → layout → recognize → assemble in one process, one page at a time."""
    from deployments.layout.detector import LayoutDetector
    from deployments.recognizer.recognizer import Recognizer
    from deployments.renderer import Renderer
    from serve_app.assemble import page_markdown, pruned_result
    from serve_app.config import load_config

    cfg = load_config(config)
    renderer, detector, recognizer = Renderer(cfg.renderer), LayoutDetector(cfg.layout), Recognizer(cfg.recognizer)

    async def run() -> float:
        await recognizer.start()
        start, pages = time.perf_counter(), 0
        for data in docs:
            for page in renderer.render(data):
                result = await recognizer.recognize(page, detector.detect([page])[0])
                pruned_result(result), page_markdown(result)
                pages += 1
        rate = pages / (time.perf_counter() - start)
        await recognizer.shutdown()
        return rate

    return asyncio.run(run())


def through_http(url: str, docs: list[bytes], clients: int) -> dict:
    bodies = [{"file": base64.b64encode(d).decode(), "fileType": 0, "visualize": False} for d in docs]
    latencies: list[float] = []
    errors = 0

    def one(body):
        nonlocal errors
        with httpx.Client(base_url=url, timeout=600) as client:
            start = time.perf_counter()
            response = client.post("/layout-parsing", json=body)
            latencies.append(time.perf_counter() - start)
            errors += response.status_code != 200

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(one, bodies))
    wall = time.perf_counter() - start
    p50, p95, p99 = np.percentile(latencies, [50, 95, 99])
    return {"clients": clients, "pages_per_s": len(docs) / wall, "p50_s": p50, "p95_s": p95, "p99_s": p99,
            "errors": errors}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--docs", type=int, default=24)
    parser.add_argument("--setup", choices=["lite", "tiny"], default="lite")
    args = parser.parse_args()
    docs = documents(args.docs)
    config = app_config(args.setup)
    from serve_app.launch import init_local_ray

    init_local_ray(log_to_driver=False,
                   runtime_env={"env_vars": {"VLLM_PLUGINS": "", "VLLM_HOST_IP": "127.0.0.1", "HF_HUB_OFFLINE": "1"}})
    import ray  # after init_local_ray, which must come before ray's first import
    from ray import serve

    from serve_app import build_app

    serve.start(http_options={"host": "127.0.0.1", "port": 8099})
    serve.run(build_app(config), name="bench")
    url = "http://127.0.0.1:8099"
    through_http(url, docs[:2], 2)  # warm-up
    rows = [through_http(url, docs, c) for c in (1, 4, 16)]
    serve.shutdown()
    ray.shutdown()
    base = sequential(docs, config)
    print(f"{args.docs} one-page documents, setup {args.setup}, {os.cpu_count()} cores")
    print(f"{'clients':>8}{'pages/s':>10}{'p50 s':>8}{'p95 s':>8}{'p99 s':>8}{'errors':>8}{'vs seq':>8}")
    for r in rows:
        print(f"{r['clients']:>8}{r['pages_per_s']:>10.2f}{r['p50_s']:>8.2f}{r['p95_s']:>8.2f}{r['p99_s']:>8.2f}"
              f"{r['errors']:>8}{r['pages_per_s'] / base:>8.2f}")
    print(f"{'in-process, one page at a time':<40}{base:>8.2f} pages/s")
    out = ROOT / "benchmarks" / "results"
    out.mkdir(exist_ok=True)
    (out / f"serve_throughput_{args.setup}.json").write_text(json.dumps({"http": rows, "sequential_pages_per_s": base}, indent=2))


if __name__ == "__main__":
    main()
