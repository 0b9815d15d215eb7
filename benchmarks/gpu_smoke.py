"""The first thing to run when a GPU is lent: layout + vLLM engine from a GPU config, the memory each
took against the memory plan, and pages/s on a generated PDF.

    .venv-gpu/bin/python -m benchmarks.gpu_smoke configs/gpu-16gb.yaml [--pages 40]
        [--layout-model DIR] [--vlm-model DIR]

Steps, in the order a Serve deployment on one card meets them:
1. NVML reads the card (total/free) before anything holds a context.
2. The layout stage starts (CUDA context, weights, a warm-up batch of ``layout.batch_size``): the
   memory it took (NVML, whole card) against ``layout_peak_gib`` of the plan, and what it measured.
3. The recognizer starts: the plan it computed (with the layout resident, from the ledger) and the
   memory the EngineCore took against ``gpu_memory_utilization x total`` + its context.
4. A generated PDF (text, tables, formulas) goes through the pipeline (the stages in this process);
   pages/s, blocks/s.
5. Room left on the card, against the layout's peak: could a layout replica restart beside the engine?

Writes ``benchmarks/results/gpu_smoke.json``. On a machine without a GPU it stops with NVML's reason
(``--allow-cpu`` runs the same steps on CPU, with tiny checkpoints it builds unless the model options
name others, to check the script itself).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

import yaml

from benchmarks.harness import results
from benchmarks.harness.corpora import mixed_pdf
from deployments.gpu_device import GpuUnavailable, read_device
from deployments.gpu_memory import layout_peak_gib
from deployments.layout.detector import LayoutDetector
from deployments.recognizer.recognizer import Recognizer
from deployments.renderer import Renderer
from serve_app.config import load_config
from serve_app.options import ParseOptions
from serve_app.pipeline import DocumentPipeline, LocalStages

os.environ.setdefault("VLLM_HOST_IP", "127.0.0.1")


def used_gib() -> float | None:
    try:
        card = read_device(0)
    except GpuUnavailable:
        return None
    return round(card.total_gib - card.free_gib, 2)


def app_config(path: str, layout_model: str | None, vlm_model: str | None, cpu: bool):
    data = yaml.safe_load(Path(path).read_text())
    args = data["applications"][0]["args"] if "applications" in data else data
    if layout_model:
        args["layout"]["model"] = layout_model
    if vlm_model:
        args["recognizer"]["model"] = vlm_model
    if cpu:
        args["layout"]["device"] = "cpu"
        args["recognizer"].update(device="cpu", dtype="float32")
    return load_config(args)


async def parse(pipeline: DocumentPipeline, data: bytes) -> dict:
    """A document through the pipeline every caller uses, here over the stages in this process."""
    start = time.perf_counter()
    parsed = await pipeline.parse(data, "pdf", ParseOptions.from_request({"visualize": False}), "smoke")
    done = time.perf_counter()
    results_ = [out.result for out in parsed.pages]
    blocks = sum(len(r.blocks) for r in results_)
    return {"pages": len(results_), "blocks": blocks, "failed_pages": [r.page_index for r in results_ if r.error],
            "total_s": round(done - start, 2), "pages_per_s": round(len(results_) / (done - start), 3),
            "blocks_per_s": round(blocks / (done - start), 2)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", help="a GPU config, e.g. configs/gpu-16gb.yaml")
    parser.add_argument("--pages", type=int, default=40)
    parser.add_argument("--layout-model", help="local PP-DocLayoutV3 (or V2, pipeline v1) directory (default: the config's)")
    parser.add_argument("--vlm-model", help="local PaddleOCR-VL directory (default: the config's)")
    parser.add_argument("--allow-cpu", action="store_true", help="run on CPU (tiny checkpoints) to test the script")
    args = parser.parse_args(argv)
    try:
        card = read_device(0)
    except GpuUnavailable as exc:
        if not args.allow_cpu:
            print(f"gpu_smoke: {exc}", file=sys.stderr)
            return 2
        card = None
        if not (args.layout_model and args.vlm_model):  # the script's check: tiny checkpoints built here
            import tempfile

            from deployments.pipelines import pipeline_for
            from devtools import tiny_models
            from serve_app.config import load_config

            spec = pipeline_for(load_config(args.config).pipeline)  # the config's layout model and template
            layout = (tiny_models.build_tiny_layout_v3_transformers if spec.polygons
                      else tiny_models.build_tiny_layout_transformers)
            tiny = Path(tempfile.mkdtemp(prefix="gpu-smoke-"))
            args.layout_model = args.layout_model or str(layout(tiny / "layout"))
            args.vlm_model = args.vlm_model or str(tiny_models.build_tiny_vlm(tiny / "vlm", version=spec.version))
    config = app_config(args.config, args.layout_model, args.vlm_model, cpu=card is None)
    report: dict = {"config": args.config, "card": None if card is None else
                    {"name": card.name, "total_gib": round(card.total_gib, 2), "free_gib": round(card.free_gib, 2),
                     "capability": card.capability}}
    print(f"card: {report['card'] or 'none (CPU run)'}")

    before = used_gib()
    detector = LayoutDetector(config.layout)
    after_layout = used_gib()
    planned_layout = layout_peak_gib(config.layout.batch_size, config.layout.resolved_dtype, config.layout.model_name)
    report["layout"] = {"device": detector.device, "batch_size": config.layout.batch_size,
                        "dtype": config.layout.resolved_dtype, "planned_peak_gib": planned_layout,
                        "took_gib": None if before is None else round(after_layout - before, 2)}
    print(f"layout: {report['layout']}")

    recognizer = Recognizer(config.recognizer_config())

    async def run() -> dict:  # one event loop for the engine's whole life
        await recognizer.start()
        after_engine = used_gib()
        # A layout replica that restarts frees what it held, then needs its peak again.
        room = None if card is None else round(read_device(0).free_gib + report["layout"]["took_gib"], 2)
        plan = getattr(recognizer.engine, "memory_plan", None)
        engine = {"engine": recognizer.engine.name, "plan": None if plan is None else plan.as_dict(),
                  "took_gib": None if after_layout is None else round(after_engine - after_layout, 2)}
        if plan is not None:
            engine["planned_gib"] = round(plan.gpu_memory_utilization * plan.total_gib + plan.engine_context_gib, 2)
            print(f"memory plan: {plan.describe()}")
        print(f"engine: took {engine['took_gib']} GiB, planned {engine.get('planned_gib')} GiB")
        pipeline = DocumentPipeline(LocalStages(Renderer(config.renderer), detector, recognizer), page_window=64)
        await parse(pipeline, mixed_pdf(2))  # warm-up: CUDA graphs, processor caches
        speed = await parse(pipeline, mixed_pdf(args.pages))
        print(f"parse: {speed}")
        await recognizer.shutdown()
        return {"engine": engine, "parse": speed, "layout_restart_room_gib": room}

    report.update(asyncio.run(run()))
    if card is not None:
        report["layout_restart_fits"] = report["layout_restart_room_gib"] >= planned_layout
        print(f"a restarting layout finds {report['layout_restart_room_gib']} GiB; it needs {planned_layout}: "
              f"{'fits' if report['layout_restart_fits'] else 'DOES NOT FIT'}")
    results.write("gpu_smoke", report, "cpu (tiny checkpoints: a check of the script)" if card is None else card.name)
    return 0 if not report["parse"]["failed_pages"] else 1


if __name__ == "__main__":
    sys.exit(main())
