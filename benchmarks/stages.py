"""Stage throughput on this machine: rendering, layout, recognition.

- Renderer: pages/s in one process against a bare pymupdf loop in the same run (goal >= 0.9 of it),
  at 144 and 200 DPI; and with each page's words taken from the PDF's text layer, as a born-digital
  page is rendered by default (``textLayer: auto``).
- Layout: pages/s per backend on CPU. ``lite`` runs its real PP-Layout CDLA weights; the
  ``transformers`` and ``paddlex`` rows use the tiny random checkpoints of PP-DocLayoutV2 and V3, so
  they measure our pre/post-processing (V3: masks traced into polygons) and the frameworks'
  overhead, not the speed of the real models; the "full size" rows run PP-DocLayoutV2 and V3 with
  their real architectures and random weights (PaddleX's conversion configs) in transformers on CPU,
  which times like the real weights. ``--layout-only`` runs only these rows (``stages_layout.json``).
- Recognition: blocks/s and generated tokens/s of one vLLM engine (CPU build, tiny random
  PaddleOCR-VL, 32 new tokens per block) at concurrency 1, 8 and 64; pages/s of the lite engine
  reading pixels (``textLayer: off``: OCR) and with the PDF's text layer (``auto``, the default).

    .venv/bin/python -m benchmarks.stages [--pages 200]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pymupdf

from benchmarks.harness import results
from benchmarks.harness.corpora import mixed_pdf
from benchmarks.harness.server import WORKER_ENV
from deployments.layout.config import LayoutConfig
from deployments.layout.detector import LayoutDetector
from deployments.layout.options import LayoutOptions
from deployments.renderer import Renderer, RendererConfig

for _name, _value in WORKER_ENV.items():  # the vLLM engine runs in this process
    os.environ.setdefault(_name, _value)


def bare_loop(data: bytes, scale: float) -> int:
    """The fastest plain loop we know to an owned RGB array (samples_mv avoids a bytes copy)."""
    doc = pymupdf.open(stream=data, filetype="pdf")
    for page in doc:
        pix = page.get_pixmap(matrix=pymupdf.Matrix(scale, scale), alpha=False)
        np.frombuffer(pix.samples_mv, np.uint8).reshape(pix.height, pix.width, 3).copy()
    return doc.page_count


def best_of(fn, repeats=3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def bench_render(data: bytes, pages: int) -> list[dict]:
    rows = []
    for dpi in (144, 200):
        scale = dpi / 72
        renderer = Renderer(RendererConfig(scale=scale))
        bare_times, our_times, layer_times = [], [], []
        for _ in range(5):  # interleaved, best of 5: this shared VM's timings are noisy
            bare_times.append(best_of(lambda: bare_loop(data, scale), repeats=1))
            our_times.append(best_of(lambda: sum(1 for _ in renderer.render(data, text_layer=False)), repeats=1))
            layer_times.append(best_of(lambda: sum(1 for _ in renderer.render(data)), repeats=1))
        bare, ours, layer = pages / min(bare_times), pages / min(our_times), pages / min(layer_times)
        rows.append({"dpi": dpi, "ours_pages_per_s": ours, "bare_pymupdf_pages_per_s": bare, "ratio": ours / bare,
                     "with_text_layer_pages_per_s": layer})
    return rows


def bench_layout(data: bytes, full_size_pages: int = 4) -> list[dict]:
    from devtools import tiny_models as tiny

    pages = list(Renderer().render(data))
    tmp = Path(tempfile.mkdtemp())
    v3 = {"model_name": "PP-DocLayoutV3"}
    configs = {
        "lite (real CDLA weights)": (LayoutConfig(backend="lite"), pages),
        "transformers V2 (tiny)": (LayoutConfig(backend="transformers",
                                                model=str(tiny.build_tiny_layout_transformers(tmp / "hf"))), pages),
        "paddlex V2 (tiny)": (LayoutConfig(backend="paddlex", model=str(tiny.build_tiny_layout_paddle(tmp / "pd"))), pages),
        "transformers V3 (tiny)": (LayoutConfig(backend="transformers", **v3,
                                                model=str(tiny.build_tiny_layout_v3_transformers(tmp / "hf3"))), pages),
        "paddlex V3 (tiny)": (LayoutConfig(backend="paddlex", **v3,
                                           model=str(tiny.build_tiny_layout_v3_paddle(tmp / "pd3"))), pages),
    }
    for name in ("PP-DocLayoutV2", "PP-DocLayoutV3"):
        model = full_size_checkpoint(name, tmp / name)
        configs[f"transformers {name[-2:]} (full size, random weights)"] = (
            LayoutConfig(backend="transformers", model_name=name, model=str(model), batch_size=1), pages[:full_size_pages])
    rows = []
    for name, (config, chosen) in configs.items():
        detector = LayoutDetector(config)
        detector.detect(chosen[:1])  # warm-up
        options = [LayoutOptions(threshold=0.3 if "V3" in name else LayoutOptions().threshold)] * len(chosen)
        seconds = best_of(lambda: detector.detect(chosen, options), repeats=2)
        rows.append({"backend": name, "pages": len(chosen), "pages_per_s": len(chosen) / seconds})
    return rows


def full_size_checkpoint(name: str, out: Path) -> Path:
    """PP-DocLayoutV2 or V3 with its real architecture (PaddleX 3.7.2's safetensors-conversion
    config) and random weights, saved for the transformers backend."""
    import transformers
    from paddlex.modules.base.utils.pdparams2safetensors.model_config import MODEL_CONFIGS

    from deployments.labels import PP_DOCLAYOUT_V2_LABELS

    config = {k: v for k, v in MODEL_CONFIGS[name].items()
              if k not in ("architectures", "model_type", "torch_dtype", "label2id", "id2label")}
    kind = name.replace("-", "")
    config = getattr(transformers, f"{kind}Config")(**config, id2label=dict(enumerate(PP_DOCLAYOUT_V2_LABELS)))
    getattr(transformers, f"{kind}ForObjectDetection")(config).eval().save_pretrained(out)
    return out


def bench_recognition(data: bytes) -> dict:
    import asyncio

    rows = asyncio.run(_recognition_rows())
    rows["lite_pages_per_s"], rows["lite_text_layer_pages_per_s"] = _lite_pages_per_s(data)
    return rows


async def _recognition_rows(max_new_tokens: int = 32) -> dict:
    import asyncio

    from deployments.recognizer.config import RecognizerConfig
    from deployments.recognizer.engines import GenerationRequest
    from deployments.recognizer.engines.vllm_engine import VllmEngine
    from devtools.tiny_models import build_tiny_vlm

    model = build_tiny_vlm(Path(tempfile.mkdtemp()) / "vlm")
    engine = VllmEngine(RecognizerConfig(model=str(model), dtype="bfloat16", cpu_kv_cache_gb=1.0))
    await engine.start()
    rng = np.random.RandomState(0)
    crops = [(rng.rand(60, 300, 3) * 255).astype(np.uint8) for _ in range(64)]
    rows = {}
    try:
        for concurrency in (1, 8, 64):
            requests = [GenerationRequest(f"c{concurrency}-{i}", "OCR:", crops[i % 64], 784, 784 * 16,
                                          max_new_tokens=max_new_tokens) for i in range(max(16, concurrency * 2))]
            start = time.perf_counter()
            tokens = 0
            for first in range(0, len(requests), concurrency):
                batch = requests[first : first + concurrency]
                tokens += sum(r.num_tokens for r in await asyncio.gather(*(engine.generate(q) for q in batch)))
            seconds = time.perf_counter() - start
            rows[f"concurrency_{concurrency}"] = {"blocks_per_s": len(requests) / seconds, "tokens_per_s": tokens / seconds,
                                                  "tokens_per_block": tokens / len(requests)}
    finally:
        await engine.shutdown()
    return rows


def _lite_pages_per_s(data: bytes) -> tuple[float, float]:
    """The lite engine on the same 10 born-digital pages (rendered and laid out once): pages/s by
    OCR (``textLayer: off``) and with words from the text layer (``auto``)."""
    import asyncio

    from deployments.recognizer.recognizer import PageRequest, Recognizer

    pages = list(Renderer().render(data))[:10]
    boxes = LayoutDetector().detect(pages)
    recognizer = Recognizer()

    async def read(text_layer: str) -> float:
        start = time.perf_counter()
        for page, page_boxes in zip(pages, boxes):
            await recognizer.recognize(page, page_boxes, PageRequest(text_layer=text_layer))
        return len(pages) / (time.perf_counter() - start)

    async def both() -> tuple[float, float]:
        await recognizer.start()
        return await read("off"), await read("auto")

    return asyncio.run(both())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pages", type=int, default=200)
    parser.add_argument("--recognition-tokens", type=int, default=0, metavar="N",
                        help="only the vLLM recognition part, with max_new_tokens N (decode-dominated like real OCR at "
                        "256); writes stages_recognition_<N>.json")
    parser.add_argument("--layout-only", action="store_true", help="only the layout rows (stages_layout.json)")
    args = parser.parse_args()
    if args.layout_only:
        layout = bench_layout(mixed_pdf(args.pages))
        _print_layout(layout)
        results.write("stages_layout", {"layout": layout}, "cpu (real lite weights, tiny and full-size random checkpoints)")
        return
    if args.recognition_tokens:
        import asyncio

        rows = asyncio.run(_recognition_rows(args.recognition_tokens))
        print(f"recognition, one vLLM engine (CPU build, tiny random model, max_new_tokens {args.recognition_tokens})")
        for name, r in rows.items():
            print(f"  {name:<18}{r['blocks_per_s']:>8.1f} blocks/s{r['tokens_per_s']:>10.0f} tokens/s"
                  f"{r['tokens_per_block']:>8.1f} tokens/block")
        rows["speedup_64_vs_1"] = round(rows["concurrency_64"]["blocks_per_s"] / rows["concurrency_1"]["blocks_per_s"], 2)
        print(f"  concurrency 64 vs 1: {rows['speedup_64_vs_1']}x")
        results.write(f"stages_recognition_{args.recognition_tokens}", rows, "cpu (tiny checkpoints)")
        return
    data = mixed_pdf(args.pages)
    render = bench_render(data, args.pages)
    print(f"renderer, one process ({args.pages} A4 pages: text and paper layouts)")
    print(f"{'dpi':>5}{'ours p/s':>11}{'bare p/s':>11}{'ratio':>8}{'ours + text layer p/s':>24}")
    for r in render:
        print(f"{r['dpi']:>5}{r['ours_pages_per_s']:>11.1f}{r['bare_pymupdf_pages_per_s']:>11.1f}{r['ratio']:>8.2f}"
              f"{r['with_text_layer_pages_per_s']:>24.1f}")
    layout = bench_layout(mixed_pdf(40))
    _print_layout(layout)
    recognition = bench_recognition(mixed_pdf(10))
    print("\nrecognition, one vLLM engine (CPU build, tiny random model, 32 new tokens per block)")
    for name, r in recognition.items():
        if name.startswith("concurrency"):
            print(f"  {name:<18}{r['blocks_per_s']:>8.1f} blocks/s{r['tokens_per_s']:>10.0f} tokens/s")
    print(f"  lite engine (PP-OCRv6, real weights): {recognition['lite_pages_per_s']:.2f} pages/s OCR (textLayer off), "
          f"{recognition['lite_text_layer_pages_per_s']:.2f} with the text layer (auto)")
    results.write("stages", {"render": render, "layout": layout, "recognition": recognition},
                  "cpu (real lite weights, tiny checkpoints)")


def _print_layout(layout: list[dict]) -> None:
    print(f"\nlayout on CPU ({os.cpu_count()} cores)")
    for r in layout:
        print(f"  {r['backend']:<44}{r['pages_per_s']:>8.2f} pages/s ({r['pages']} pages)")


if __name__ == "__main__":
    main()
