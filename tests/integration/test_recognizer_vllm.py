"""The recognition stage on the real vLLM engine (CPU build) with tiny PaddleOCR-VL checkpoints:
content through the engine, 50 concurrent pages, the repetition early stop, cancellation, the
page deadline, and crops the official pipeline would crash the engine with."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from deployments.datamodel import LayoutBox, PageImage, PageStatus
from deployments.recognizer.config import RecognizerConfig
from deployments.recognizer.engines.vllm_engine import VllmEngine
from deployments.recognizer.planning import whole_page_box
from deployments.recognizer.recognizer import PageRequest, Recognizer, SamplingOptions
from deployments.recognizer.repetition import RepetitionStop
from devtools.tiny_models import FIXED_ANSWER
from devtools.generators import synthetic_page
from serve_app.assemble import page_markdown

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def cpu_config(model, **kw) -> RecognizerConfig:
    return RecognizerConfig(engine="vllm", model=str(model), dtype="float32", cpu_kv_cache_gb=0.25, **kw)


def page_with_blocks(seed: int = 0, n: int = 3):
    import random

    rng = random.Random(seed)
    image = synthetic_page(rng, 600, 800)
    labels = ["paragraph_title", "text", "table", "display_formula", "text"]
    step = min(60, 760 // n)
    boxes = [LayoutBox(0, labels[i % len(labels)], 0.9, (20, 20 + i * step, 580, 20 + i * step + step - 8), i + 1)
             for i in range(n)]
    return PageImage(f"doc{seed}", 0, 1, image), boxes


def unfinished(recognizer) -> int:
    return recognizer.unfinished()  # the vLLM engine's own count of requests it still holds


async def until(condition, polls: int = 2400) -> bool:
    """Wait for ``condition()`` (checked between engine steps); the count only bounds a hang."""
    for _ in range(polls):
        if condition():
            return True
        await asyncio.sleep(0.05)
    return condition()


def temp_entries() -> set[str]:
    """The temp dir's entries: where vLLM's ZMQ sockets went before each engine had its RpcFolder.
    Left out: ``vllm_dist_*``, the file of torch's FileStore that vLLM's CPU executor makes there and
    leaves when its shutdown force-kills the EngineCore (vLLM's, not a path the engine is given)."""
    import os
    import tempfile

    return {name for name in os.listdir(tempfile.gettempdir()) if not name.startswith("vllm_dist_")}


@pytest.fixture(scope="module")
def fixed(run, tiny_vlm_fixed):
    recognizer = Recognizer(engine=VllmEngine(cpu_config(tiny_vlm_fixed)), config=cpu_config(tiny_vlm_fixed))
    run(recognizer.start())
    yield recognizer
    run(recognizer.shutdown())


@pytest.fixture(scope="module")
def looping(run, tiny_vlm_loop):
    config = cpu_config(tiny_vlm_loop)
    recognizer = Recognizer(config, VllmEngine(config))
    run(recognizer.start())
    yield recognizer
    run(recognizer.shutdown())


def test_fixed_answer_arrives_in_page_results_and_markdown(run, fixed):
    page, boxes = page_with_blocks(n=4)
    result = run(fixed.recognize(page, boxes, PageRequest()))
    assert result.status is PageStatus.OK
    texts = [b.content for b in result.blocks if b.label in ("text", "paragraph_title")]
    assert texts == [FIXED_ANSWER] * 2
    assert all(b.finish_reason == "stop" and b.num_tokens == 5 for b in result.blocks if b.label == "text")
    assert f"## {FIXED_ANSWER[:-1]}" in page_markdown(result)  # the title, numbering rules applied


def test_fifty_concurrent_pages_through_one_engine(run, looping):
    pages = [page_with_blocks(seed) for seed in range(50)]

    async def all_pages():
        return await asyncio.gather(*(looping.recognize(p, b) for p, b in pages))

    start = time.perf_counter()
    results = run(all_pages())
    elapsed = time.perf_counter() - start
    assert [r.status for r in results] == [PageStatus.OK] * 50
    blocks = [b for r in results for b in r.blocks]
    assert len(blocks) == 150 and all(b.content.startswith(FIXED_ANSWER) for b in blocks)
    assert unfinished(looping) == 0
    print(f"50 pages / 150 blocks in {elapsed:.1f} s")


def test_repetition_loop_is_stopped_early(run, looping):
    page, boxes = page_with_blocks(n=2)
    result = run(looping.recognize(page, boxes[1:2], PageRequest(sampling=SamplingOptions(max_new_tokens=3000))))
    (block,) = result.blocks
    assert block.finish_reason == "repetition" and block.num_tokens < 200  # not 3000
    assert block.content == FIXED_ANSWER  # what remains after PaddleX's truncation rules


def _no_early_stop(recognizer):
    engine = recognizer.engine
    saved = engine.config
    engine.config = saved.model_copy(update={"repetition_stop": RepetitionStop(enabled=False)})
    return saved


def test_cancelled_page_aborts_its_blocks_in_the_engine(run, looping):
    saved = _no_early_stop(looping)
    page, boxes = page_with_blocks(n=20)

    async def cancel_midway():
        task = asyncio.create_task(looping.recognize(page, boxes, PageRequest(sampling=SamplingOptions(max_new_tokens=3500))))
        await until(lambda: unfinished(looping) > 0)  # the page's blocks are in the engine
        busy = unfinished(looping)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await until(lambda: unfinished(looping) == 0)
        return busy, unfinished(looping)

    try:
        busy, left = run(cancel_midway())
    finally:
        looping.engine.config = saved
    assert busy > 0 and left == 0


def test_page_deadline_fails_that_page_and_frees_the_engine(run, looping):
    saved = _no_early_stop(looping)
    page, boxes = page_with_blocks(n=20)
    try:
        result = run(looping.recognize(page, boxes, PageRequest(sampling=SamplingOptions(max_new_tokens=3500), timeout_s=1.0)))
        run(until(lambda: unfinished(looping) == 0))
    finally:
        looping.engine.config = saved
    assert result.status is PageStatus.FAILED and result.error.kind == "deadline_exceeded"
    assert "within 1 s" in result.error.message
    assert unfinished(looping) == 0  # its 20 blocks were aborted, not left to run 3,500 tokens


def test_one_pixel_image_gives_an_empty_page_not_a_crash(run, fixed):
    page = PageImage("dot", 0, 1, np.zeros((1, 1, 3), np.uint8))
    result = run(fixed.recognize(page, [whole_page_box(1, 1, "ocr")]))
    assert result.status is PageStatus.OK and result.blocks == []  # PaddleX drops boxes under 6 px too


def test_three_pixel_formula_crop_is_padded_before_the_engine(run, fixed):
    image = np.full((40, 60, 3), 255, np.uint8)
    image[20:23, 30:33] = 0  # the margin crop leaves 3x3 px (PaddleOCR #17378 crashed the server)
    box = LayoutBox(5, "display_formula", 0.9, (0, 0, 60, 40), 1)
    result = run(fixed.recognize(PageImage("f", 0, 1, image), [box]))
    (block,) = result.blocks
    assert block.content == FIXED_ANSWER and block.warning == "crop 3x3 px padded to 28x28"


@pytest.mark.parametrize("shape", [(10, 5000), (5000, 10)])
def test_elongated_crops_are_guarded_not_crashing(run, fixed, shape):
    image = np.full((*shape, 3), 40, np.uint8)
    page = PageImage("odd", 0, 1, image)
    box = whole_page_box(shape[1], shape[0], "ocr")
    result = run(fixed.recognize(page, [box]))
    assert result.status is PageStatus.OK
    (block,) = result.blocks
    assert block.content == FIXED_ANSWER and "padded" in block.warning


def test_the_models_own_chat_template_reaches_the_engines_prompt(run, tiny_vlm_fixed, tmp_path):
    """A fine-tuned directory with its own template: vLLM's tokenizer renders it (not the built-in
    v1 template), and the model still reads with it."""
    import shutil

    from devtools.tiny_models import VLM_CHAT_TEMPLATE

    model = tmp_path / "own-template"
    shutil.copytree(tiny_vlm_fixed, model)
    (model / "chat_template.jinja").write_text(VLM_CHAT_TEMPLATE.replace("User: ", "Reader, transcribe. User: "))
    recognizer = Recognizer(cpu_config(model), VllmEngine(cpu_config(model)))
    before = temp_entries()
    run(recognizer.start())
    rpc = recognizer.engine.rpc.path
    try:
        assert any(p.is_socket() for p in rpc.iterdir())  # the engine's ZMQ sockets, in its own folder
        template = recognizer.engine.template
        assert template.startswith("<|begin_of_sentence|>Reader, transcribe. User: <|IMAGE_START|>")
        assert template.format(prompt="OCR:").endswith("<|IMAGE_END|>OCR:\nAssistant: ")
        page, boxes = page_with_blocks(n=2)
        result = run(recognizer.recognize(page, boxes))
        assert [b.content for b in result.blocks if b.label == "text"] == [FIXED_ANSWER]
    finally:
        run(recognizer.shutdown())
    assert not rpc.exists() and temp_entries() - before == set()  # no socket, log or folder left behind


@pytest.mark.parametrize("template, fragment", [
    ("{{ messages[0]['content'][1]['text'] }}", "does not place <|IMAGE_PLACEHOLDER|> and the prompt"),
    ("{{ raise_exception('no images here') }}", "cannot render one image and a prompt"),
])
def test_a_template_that_cannot_place_the_image_stops_the_start_with_the_fix(run, tiny_vlm_fixed, tmp_path,
                                                                           template, fragment):
    from types import SimpleNamespace

    from transformers import AutoTokenizer

    from deployments.recognizer.engines import EngineStartError

    tokenizer = AutoTokenizer.from_pretrained(tiny_vlm_fixed)
    tokenizer.chat_template = template
    engine = VllmEngine(cpu_config(tiny_vlm_fixed))
    engine.engine = SimpleNamespace(get_tokenizer=lambda: tokenizer)  # vLLM's own tokenizer object, as 0.32 hands it
    with pytest.raises(EngineStartError, match="set recognizer.chat_template") as raised:
        run(engine._template())
    assert fragment in str(raised.value)


def test_an_engine_core_failure_reports_its_root_cause_and_the_fix_that_fits(run, tiny_vlm_fixed):
    """vLLM's front end only says "Engine core initialization failed. See root cause above"; the
    EngineCore process's own error (here: no room for KV cache blocks) reaches the message."""
    from deployments.recognizer.engines import EngineStartError

    config = cpu_config(tiny_vlm_fixed).model_copy(update={"cpu_kv_cache_gb": 0.00001})
    engine, before = VllmEngine(config), temp_entries()
    with pytest.raises(EngineStartError) as raised:
        run(engine.start())
    assert engine.rpc is None and engine.errors is None and temp_entries() - before == set()
    message = str(raised.value)
    assert "ValueError: No available memory for the cache blocks" in message
    assert "recognizer.cpu_kv_cache_gb" in message
    assert "See root cause above" not in message and "huggingface-cli" not in message


def test_a_fine_tuned_directory_without_the_base_files_names_them(run, tiny_vlm_fixed, tmp_path):
    import shutil

    from deployments.recognizer.engines import EngineStartError

    model = tmp_path / "sft-output"
    shutil.copytree(tiny_vlm_fixed, model, ignore=shutil.ignore_patterns("processor_config.json", "chat_template*"))
    with pytest.raises(EngineStartError, match=r"lacks preprocessor_config.json; "
                                               r"a fine-tuned \(SFT\) output directory needs them"):
        run(VllmEngine(cpu_config(model)).start())
