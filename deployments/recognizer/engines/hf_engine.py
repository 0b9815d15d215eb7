"""PaddleOCR-VL through transformers, for machines without vLLM. Requests are queued and read
in small batches (same pixel limits per batch) on a worker thread."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from deployments.dtypes import cuda_capability, resolve
from deployments.pipelines import pipeline_for
from deployments.recognizer.config import HF_VLM_MODEL, RecognizerConfig
from deployments.recognizer.engines import ALL_TASKS, EngineStartError, GenerationRequest, GenerationResult

log = logging.getLogger(__name__)


class TransformersEngine:
    name = "transformers"
    tasks = ALL_TASKS

    def __init__(self, config: RecognizerConfig):
        self.config = config
        self.queue: asyncio.Queue | None = None
        self.worker: asyncio.Task | None = None

    async def start(self) -> None:
        import torch
        from transformers import AutoProcessor, PaddleOCRVLForConditionalGeneration

        source = self.config.model_source
        if (source.startswith("/") or source.startswith(".")) and not Path(source).is_dir():
            raise EngineStartError(f"recognition model directory {source} does not exist; set recognizer.model to a "
                                   f"PaddleOCR-VL checkpoint directory or a hub id such as {HF_VLM_MODEL}")
        device = "cuda" if torch.cuda.is_available() and self.config.device != "cpu" else "cpu"
        dtype = getattr(torch, resolve(self.config.dtype, cuda_capability() if device == "cuda" else None))
        try:
            self.processor = AutoProcessor.from_pretrained(source)
            model = PaddleOCRVLForConditionalGeneration.from_pretrained(source, dtype=dtype)
        except OSError as exc:
            raise EngineStartError(f"could not load {source!r} ({str(exc).splitlines()[0]}); run `huggingface-cli "
                                   f"download {HF_VLM_MODEL} --local-dir DIR` where the hub is reachable and set "
                                   "recognizer.model to DIR") from None
        self.processor.tokenizer.padding_side = "left"
        self.template = None if getattr(self.processor, "chat_template", None) else pipeline_for(
            self.config.pipeline).chat_template
        log.info("chat template: %s", "the model's own" if self.template is None else
                 f"pipeline {self.config.pipeline}'s (the checkpoint has none)")
        self.model, self.device, self.torch = model.to(device).eval(), device, torch
        self.queue = asyncio.Queue()
        self.worker = asyncio.create_task(self._work())

    async def generate(self, request: GenerationRequest) -> GenerationResult:
        future = asyncio.get_running_loop().create_future()
        await self.queue.put((request, future))
        return await future

    def unfinished(self) -> int:
        """Queued requests whose caller still waits (a cancelled one is dropped before its batch)."""
        return 0 if self.queue is None else sum(not f.done() for _, f in list(self.queue._queue))

    async def _work(self) -> None:
        while True:
            batch = [await self.queue.get()]
            while len(batch) < self.config.batch_size and not self.queue.empty():
                batch.append(self.queue.get_nowait())
            batch = [(r, f) for r, f in batch if not f.cancelled()]
            for group in _by_settings(batch):
                try:
                    results = await asyncio.to_thread(self._run, [r for r, _ in group])
                except Exception as exc:  # noqa: BLE001 - fail the waiting requests, keep serving
                    results = [exc] * len(group)
                for (_, future), result in zip(group, results):
                    if not future.done():
                        future.set_exception(result) if isinstance(result, Exception) else future.set_result(result)

    def _run(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        from PIL import Image

        first = requests[0]
        texts = [self.template.format(prompt=r.prompt) if self.template else self.processor.apply_chat_template(
            [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": r.prompt}]}],
            add_generation_prompt=True, tokenize=False) for r in requests]
        inputs = self.processor(text=texts, images=[Image.fromarray(r.image) for r in requests], padding=True,
                                return_tensors="pt", images_kwargs={"size": {"shortest_edge": first.min_pixels,
                                                                            "longest_edge": first.max_pixels}}).to(self.device)
        sampling = {"do_sample": False} if first.temperature == 0 else {"do_sample": True, "temperature": first.temperature,
                                                                         "top_p": first.top_p or 1.0}
        with self.torch.inference_mode():
            out = self.model.generate(**inputs, max_new_tokens=first.max_new_tokens,
                                      repetition_penalty=first.repetition_penalty or 1.0, **sampling)
        new = out[:, inputs["input_ids"].shape[1]:]
        eos = self.processor.tokenizer.eos_token_id
        results = []
        for row, request in zip(new.tolist(), requests):
            tokens = row[: row.index(eos) + 1] if eos in row else row
            text = self.processor.tokenizer.decode(tokens, skip_special_tokens=request.skip_special_tokens)
            results.append(GenerationResult(text, len(tokens), "stop" if eos in row else "length", tuple(tokens)))
        return results

    async def check_health(self) -> None:
        if self.worker is None or self.worker.done():
            raise RuntimeError("the transformers engine is not running")

    async def shutdown(self) -> None:
        if self.worker is not None:
            self.worker.cancel()
            self.worker = None


def _by_settings(batch):
    """Split a batch so that every group shares pixel limits and sampling settings."""
    groups: dict[tuple, list] = {}
    for request, future in batch:
        key = (request.min_pixels, request.max_pixels, request.temperature, request.top_p,
               request.repetition_penalty, request.max_new_tokens, request.skip_special_tokens)
        groups.setdefault(key, []).append((request, future))
    return list(groups.values())
