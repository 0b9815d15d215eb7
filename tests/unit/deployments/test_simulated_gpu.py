"""The simulated GPU: the cost model against hand computation, and the simulated engine's
scheduler honouring max_num_seqs, max_num_batched_tokens and abort (real image processor, real
asyncio waits of the modelled step times, which are milliseconds here)."""

from __future__ import annotations

import asyncio
import statistics
import time

import numpy as np
import pytest

from deployments.recognizer.config import RecognizerConfig
from deployments.recognizer.engines import GenerationRequest
from deployments.simulation import profiles as P
from deployments.simulation.costs import StepWork, layout_batch_seconds, output_tokens, step_seconds, vision_flops
from deployments.simulation.engine import SimulatedEngine
from deployments.simulation.layout import SimulatedLayout, TEMPLATES


def test_parameter_counts_match_the_published_size():
    total = P.VISION_PARAMS + P.LM_LAYER_PARAMS + 2 * P.LM_HEAD_PARAMS + P.PROJECTOR_PARAMS  # untied embeddings
    assert 0.89e9 < total < 0.92e9  # 905 M [R]
    assert P.KV_BYTES_PER_TOKEN == 18 * 1024


def test_a_lone_decode_step_is_memory_bound_and_a_big_prefill_compute_bound():
    rtx5090 = P.PROFILES["rtx5090"]
    weights = (P.LM_LAYER_PARAMS + P.LM_HEAD_PARAMS) * 2  # bytes read by every step
    decode = StepWork(decode_tokens=1, decode_context=500, logits=1)
    expected = (weights + 501 * 18 * 1024) / (1792e9 * 0.8) + 0.002
    assert step_seconds(rtx5090, decode) == pytest.approx(expected)
    prefill = StepWork(prefill_tokens=4000, prefill_context=4000 * 4001 // 2, logits=16, images=[4000] * 4)
    flops = (2 * P.LM_LAYER_PARAMS * 4000 + 4 * 2048 * 18 * 4000 * 4001 // 2 + 2 * P.LM_HEAD_PARAMS * 16
             + 4 * vision_flops(4000))
    assert step_seconds(rtx5090, prefill) == pytest.approx(flops / (212e12 * 0.5) + 0.002)
    assert vision_flops(1000) == pytest.approx(2 * P.VISION_PARAMS * 1000 + 4 * 1000**2 * 1152 * 27
                                               + 2 * P.PROJECTOR_PARAMS * 250)


def test_layout_batches_and_output_lengths():
    a100 = P.PROFILES["a100"]
    assert layout_batch_seconds(a100, 8) == pytest.approx(8 * 170e9 / (312e12 * 0.5) + 0.004)
    assert layout_batch_seconds(a100, 1) == pytest.approx(max(170e9 / 156e12, 0.204e9 / (2039e9 * 0.8)) + 0.004)
    draws = [output_tokens("ocr", seed, 4096) for seed in range(5000)]
    assert abs(statistics.mean(draws) - P.MEAN_TOKENS["ocr"]) < 0.05 * P.MEAN_TOKENS["ocr"]
    assert output_tokens("table", 7, 4096) == output_tokens("table", 7, 4096)
    assert max(output_tokens("table", s, 50) for s in range(200)) == 50  # maxNewTokens caps it


def request(i: int, side: int = 200) -> GenerationRequest:
    image = np.random.RandomState(i).randint(0, 255, (side, side * 3, 3), np.uint8)
    return GenerationRequest(f"r{i}", "OCR:", image, 112_896, 2_822_400, max_new_tokens=40)


def run_engine(kwargs: dict, body, **config):
    engine = SimulatedEngine(RecognizerConfig(engine="simulated", engine_kwargs=kwargs, **config))
    seen: list = []
    schedule = engine._schedule

    def recording():
        work, prefill, decode = schedule()
        seen.append((len(engine.running), [chunk for _, chunk in prefill], len(decode)))
        return work, prefill, decode

    engine._schedule = recording

    async def go():
        await engine.start()
        try:
            return await body(engine)
        finally:
            await engine.shutdown()

    return asyncio.run(go()), seen, engine


def test_max_num_seqs_and_the_token_budget_are_honoured():
    async def five(engine):
        return await asyncio.gather(*(engine.generate(request(i)) for i in range(5)))

    results, steps, engine = run_engine({"max_num_seqs": 2, "max_num_batched_tokens": 64}, five)
    assert len(results) == 5 and all(r.num_tokens >= 1 and r.text for r in results)
    assert max(running for running, _, _ in steps) == 2
    assert all(sum(chunks) + decode <= 64 for _, chunks, decode in steps)
    assert any(0 < c < 64 for _, chunks, _ in steps for c in chunks)  # prefills were chunked
    stats = engine.stats()
    assert stats["finished"] == 5 and stats["images"] == 5 and stats["mean_running"] <= 2
    assert stats["tokens_generated"] == sum(r.num_tokens for r in results)
    assert 0 < stats["busy_fraction"] <= 1


def test_a_cancelled_block_is_aborted():
    async def cancel_one(engine):
        task = asyncio.ensure_future(engine.generate(request(1, side=600)))
        other = asyncio.ensure_future(engine.generate(request(2)))
        while engine.unfinished() < 2:
            await asyncio.sleep(0)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await other
        return engine.unfinished()

    left, _, engine = run_engine({}, cancel_one)
    assert left == 0 and engine.stats()["aborted"] == 1 and engine.stats()["finished"] == 1


def test_the_card_steps_while_the_event_loop_is_busy():
    """As vLLM's EngineCore runs in its own process, the simulated card goes on stepping while the
    front end's event loop is held (by image processors, say); results wait for the loop."""

    async def hold_the_loop(engine):
        blocks = [asyncio.ensure_future(engine.generate(request(i))) for i in range(3)]
        while engine.unfinished() < 3:
            await asyncio.sleep(0)
        for _ in range(3000):  # the loop is held here: no await until every block is done
            if engine.stats()["finished"] == 3:
                break
            time.sleep(0.01)
        finished_while_held = engine.stats()["finished"]
        await asyncio.gather(*blocks)
        return finished_while_held

    finished_while_held, _, engine = run_engine({}, hold_the_loop)
    assert finished_while_held == 3 and engine.stats()["steps"] >= 40  # 40 new tokens each

def test_the_image_processor_runs_on_one_thread_beside_the_event_loop():
    """As vLLM 0.32's front end (its renderer's single-worker ``_mm_executor``): every block's image
    processor runs on the same worker thread, one block at a time, never on the event loop."""
    import threading

    async def four(engine):
        loop_thread, calls, running = threading.current_thread(), [], []
        processor = engine.processor

        def recording(*args, **kwargs):
            running.append(1)
            calls.append((threading.current_thread(), len(running)))
            try:
                return processor(*args, **kwargs)
            finally:
                running.pop()

        engine.processor = recording
        await asyncio.gather(*(engine.generate(request(i)) for i in range(4)))
        return loop_thread, calls

    (loop_thread, calls), _, engine = run_engine({}, four)
    threads = {thread for thread, _ in calls}
    assert len(calls) == 4 and len(threads) == 1 and loop_thread not in threads
    assert threads.pop().name.startswith("mm-processor") and {depth for _, depth in calls} == {1}
    assert engine.stats()["processor_cpu_s"] > 0 and engine.stats()["core_cpu_s"] > 0


def test_the_sizes_only_processor_gives_the_real_processors_patch_counts_without_its_pixel_work():
    """``simulated_image_processor: sizes`` (the data-path diagnostic): every block gets the patch
    count the real processor gives it (so the same prefill and vision work on the card), but the
    processor never touches its pixels."""
    shapes = [(40, 900), (200, 600), (1200, 1000), (3000, 80), (28, 28)]
    requests = [GenerationRequest(f"s{i}", "OCR:", np.full((h, w, 3), 200, np.uint8), 112_896, 2_822_400,
                                  max_new_tokens=8) for i, (h, w) in enumerate(shapes)]

    def patches(engine):
        return [engine._process(r)[0] for r in requests]

    async def counted(engine):
        called = []  # the processor's pixel work (``__call__`` → ``preprocess``) would be recorded here
        engine.processor.preprocess = lambda *a, **k: called.append(1)
        out = patches(engine)
        await asyncio.gather(*(engine.generate(r) for r in requests))
        return out, called

    async def real(engine):
        return patches(engine)

    expected, _, _ = run_engine({}, real)
    (sizes, called), _, engine = run_engine({}, counted, simulated_image_processor="sizes")
    assert sizes == expected and len(set(expected)) == len(shapes) and not called
    assert engine.stats()["finished"] == len(shapes) and engine.stats()["images"] == len(shapes)


def test_simulated_layout_gives_template_boxes_in_page_pixels():
    from deployments.layout.config import LayoutConfig

    layout = SimulatedLayout(LayoutConfig(backend="simulated", simulated_gpu="rtx5060"), "cpu")
    pages = [np.full((1000, 800, 3), v, np.uint8) for v in (200, 255)]
    rows = layout.predict(pages, 0.5)
    assert all(len(r) in {len(t) for t in TEMPLATES} for r in rows)
    for r in rows:
        assert (r[:, 2] >= 0).all() and (r[:, 4] <= 800).all() and (r[:, 5] <= 1000).all()
        assert list(r[:, 6]) == list(range(1, len(r) + 1)) and all(13 <= len(t) <= 15 for t in TEMPLATES)


def _predict_in_a_child(faults: str, value: int) -> None:
    from deployments.layout.config import LayoutConfig

    layout = SimulatedLayout(LayoutConfig(backend="simulated", simulated_faults=faults), "cpu")
    layout.predict([np.full((100, 80, 3), value, np.uint8)], 0.5)


def test_simulated_faults_fail_a_blank_page_and_kill_the_process_once_on_a_black_one(tmp_path):
    import multiprocessing

    from deployments.layout.config import LayoutConfig

    layout = SimulatedLayout(LayoutConfig(backend="simulated", simulated_faults=str(tmp_path)), "cpu")
    with pytest.raises(RuntimeError, match="blank page"):
        layout.predict([np.full((100, 80, 3), 255, np.uint8)], 0.5)
    context = multiprocessing.get_context("spawn")
    exit_codes = []
    for _ in range(2):  # the first process dies on the black page, the next one parses it
        child = context.Process(target=_predict_in_a_child, args=(str(tmp_path), 0))
        child.start()
        child.join(timeout=120)
        exit_codes.append(child.exitcode)
    assert exit_codes == [-9, 0] and len(list(tmp_path.glob("lost-replica-*"))) == 1
