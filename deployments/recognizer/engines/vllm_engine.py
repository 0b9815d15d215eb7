"""PaddleOCR-VL in an in-process vLLM ``AsyncLLM`` (continuous batching across blocks, pages and
requests; no HTTP server in between). The only module that imports vLLM."""

from __future__ import annotations

import inspect
import logging
import os
from pathlib import Path
from typing import Optional

from deployments.dtypes import cuda_capability, resolve
from deployments.recognizer.config import HF_VLM_MODEL, RecognizerConfig
from deployments.recognizer.engines import ALL_TASKS, EngineStartError, GenerationRequest, GenerationResult
from deployments.recognizer.repetition import repeated_tail

log = logging.getLogger(__name__)
V1_TEMPLATE = "<|begin_of_sentence|>User: <|IMAGE_START|><|IMAGE_PLACEHOLDER|><|IMAGE_END|>{prompt}\nAssistant: "
IMAGE_SLOT = "<|IMAGE_PLACEHOLDER|>"


def engine_args(config: RecognizerConfig, on_gpu: bool, memory_plan=None,
                capability: Optional[tuple[int, int]] = None) -> dict:
    """AsyncEngineArgs keywords: the official recipe's flags, the memory plan, then engine_kwargs.
    ``dtype: auto`` follows the card (``capability``): bf16 from sm_80 on, fp16 before; fp32 on CPU."""
    args = {
        "model": config.model or HF_VLM_MODEL,
        "dtype": resolve(config.dtype, capability if on_gpu else None),
        "max_num_batched_tokens": 16384,
        "enable_prefix_caching": False,
        "mm_processor_cache_gb": 0,
        "limit_mm_per_prompt": {"image": 1},
        "max_model_len": 8192,
    }
    if on_gpu and memory_plan is not None:
        args.update(memory_plan.engine_args())
    if not on_gpu:
        args.update(enforce_eager=True, kv_cache_memory_bytes=int(config.cpu_kv_cache_gb * 2**30), max_model_len=4096)
    args.update(config.engine_kwargs)
    return args


class VllmEngine:
    name = "vllm"
    tasks = ALL_TASKS

    def __init__(self, config: RecognizerConfig, memory_plan=None, on_gpu: bool = False):
        self.config, self.memory_plan, self.on_gpu = config, memory_plan, on_gpu
        self.engine = None
        self.template = V1_TEMPLATE
        self.logged_prompt = False

    def _plan_gpu(self) -> None:
        """On a CUDA machine size the engine from the card's free memory (the memory plan)."""
        import torch

        if self.config.device == "cpu" or not torch.cuda.is_available():
            return
        from deployments.gpu_memory import MemoryPlanError, plan_for_device

        self.on_gpu = True
        if self.memory_plan is None and "gpu_memory_utilization" not in self.config.engine_kwargs:
            try:
                self.memory_plan = plan_for_device(0, layout_reserve_gib=self.config.gpu_reserved_gb,
                                                   margin_gib=self.config.gpu_margin_gb)
            except MemoryPlanError as exc:
                raise EngineStartError(str(exc)) from None
            log.info("GPU memory plan: %s", self.memory_plan.as_dict())

    async def start(self) -> None:
        os.environ.setdefault("VLLM_HOST_IP", "127.0.0.1")
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.v1.engine.async_llm import AsyncLLM

        self._plan_gpu()
        args = engine_args(self.config, self.on_gpu, self.memory_plan, cuda_capability() if self.on_gpu else None)
        model = args["model"]
        if (model.startswith("/") or model.startswith(".")) and not Path(model).is_dir():
            raise EngineStartError(f"recognition model directory {model} does not exist; set recognizer.model to a "
                                   f"PaddleOCR-VL checkpoint directory or a hub id such as {HF_VLM_MODEL}")
        log.info("starting vLLM AsyncLLM: %s", args)
        try:
            self.engine = AsyncLLM.from_engine_args(AsyncEngineArgs(**args))
        except Exception as exc:  # noqa: BLE001 - vLLM raises many types for one meaning
            raise EngineStartError(f"vLLM could not start {model!r}: {str(exc).splitlines()[0] if str(exc) else exc!r}. "
                                   f"Without hub access run `huggingface-cli download {HF_VLM_MODEL} --local-dir DIR` "
                                   "and set recognizer.model to DIR; on small GPUs see the memory plan in the README") from None
        self.template = await self._template()

    async def _template(self) -> str:
        """The model's chat template rendered for one image and a ``{prompt}`` slot. A model without
        one gets PaddleOCR-VL's v1 template, with a warning; a template that cannot place the
        image and the prompt stops the start with the fix."""
        if self.config.chat_template:
            return self.config.chat_template
        tokenizer = self.engine.get_tokenizer()  # synchronous in vLLM 0.32 (a coroutine before)
        if inspect.isawaitable(tokenizer):
            tokenizer = await tokenizer
        if not getattr(tokenizer, "chat_template", None):
            log.warning("%s has no chat template; using PaddleOCR-VL's v1 template", self.config.model or HF_VLM_MODEL)
            return V1_TEMPLATE
        try:
            rendered = tokenizer.apply_chat_template(
                [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "\x00"}]}],
                add_generation_prompt=True, tokenize=False)
        except Exception as exc:  # noqa: BLE001 - any template error has the same fix
            raise EngineStartError(f"the chat template of {self.config.model!r} cannot render one image and a prompt "
                                   f"({type(exc).__name__}: {exc}); fix it or set recognizer.chat_template") from None
        if IMAGE_SLOT not in rendered or "\x00" not in rendered:
            raise EngineStartError(f"the chat template of {self.config.model!r} does not place {IMAGE_SLOT} and the "
                                   f"prompt ({rendered!r}); fix it or set recognizer.chat_template")
        return rendered.replace("{", "{{").replace("}", "}}").replace("\x00", "{prompt}")

    def _sampling(self, request: GenerationRequest):
        from vllm import SamplingParams

        return SamplingParams(
            temperature=request.temperature, top_p=request.top_p or 1.0,
            repetition_penalty=request.repetition_penalty or 1.0, max_tokens=request.max_new_tokens,
            skip_special_tokens=request.skip_special_tokens)

    async def generate(self, request: GenerationRequest) -> GenerationResult:
        from PIL import Image

        prompt = {
            "prompt": self.template.format(prompt=request.prompt),
            "multi_modal_data": {"image": Image.fromarray(request.image)},
            # transformers' native processor takes the limits as size (min_pixels/max_pixels kwargs are
            # deprecated there); vLLM counts image tokens from the same override.
            "mm_processor_kwargs": {"size": {"shortest_edge": request.min_pixels, "longest_edge": request.max_pixels}},
        }
        if not self.logged_prompt:  # what the model really reads, once
            self.logged_prompt = True
            log.debug("first rendered prompt: %r", prompt["prompt"])
        rule, is_table = self.config.repetition_stop, request.prompt.startswith("Table")
        last, checked = None, 0
        stream = self.engine.generate(prompt, self._sampling(request), request_id=request.request_id)
        try:
            async for out in stream:
                last = out.outputs[0]
                if rule.enabled and len(last.token_ids) - checked >= rule.check_every_tokens and not out.finished:
                    checked = len(last.token_ids)
                    loop = repeated_tail(last.text, rule, is_table)
                    if loop:
                        return GenerationResult(loop[0] + loop[1], checked, "repetition", tuple(last.token_ids))
        finally:
            await stream.aclose()  # on early return or cancellation vLLM aborts the request
        return GenerationResult(last.text, len(last.token_ids), last.finish_reason or "stop", tuple(last.token_ids))

    async def check_health(self) -> None:
        if self.engine is None:
            raise RuntimeError("the vLLM engine is not started")
        await self.engine.check_health()

    async def shutdown(self) -> None:
        if self.engine is not None:
            self.engine.shutdown()
            self.engine = None
