"""PaddleOCR-VL in an in-process vLLM ``AsyncLLM`` (continuous batching across blocks, pages and
requests; no HTTP server in between). The only module that imports vLLM."""

from __future__ import annotations

import inspect
import logging
import os
from pathlib import Path
from typing import Optional

from deployments.dtypes import resolve
from deployments.pipelines import pipeline_for
from deployments.recognizer.config import HF_VLM_MODEL, RecognizerConfig
from deployments.recognizer.engines import ALL_TASKS, EngineStartError, GenerationRequest, GenerationResult
from deployments.recognizer.engines.startup import ErrorLog, RpcFolder, missing_checkpoint_files, start_failure
from deployments.recognizer.repetition import repeated_tail

log = logging.getLogger(__name__)
IMAGE_SLOT = "<|IMAGE_PLACEHOLDER|>"


def engine_args(config: RecognizerConfig, on_gpu: bool, memory_plan=None,
                capability: Optional[tuple[int, int]] = None) -> dict:
    """AsyncEngineArgs keywords: the official recipe's flags, the memory plan, then engine_kwargs.
    ``dtype: auto`` follows the card (``capability``): bf16 from sm_80 on, fp16 before; fp32 on CPU."""
    from deployments.gpu_memory import CPU_ARGS, DEFAULT_GPU_ARGS, RECIPE_ARGS

    args = {"model": config.model_source, "dtype": resolve(config.dtype, capability if on_gpu else None),
            **RECIPE_ARGS, **(DEFAULT_GPU_ARGS if on_gpu else CPU_ARGS)}
    if on_gpu and memory_plan is not None:
        args.update(memory_plan.engine_args())
    if not on_gpu:
        args["kv_cache_memory_bytes"] = int(config.cpu_kv_cache_gb * 2**30)
    args.update(config.engine_kwargs)
    return args


def pixel_kwargs(min_pixels: int, max_pixels: int, remote_code: bool) -> dict:
    """A crop's pixel limits as ``mm_processor_kwargs`` in the form the processor at hand reads and
    vLLM counts image tokens from (``paddleocr_vl.py``): transformers' own processor
    (``trust_remote_code`` off) reads ``size``; the hub's remote processor (on, as the official recipe
    runs) reads only ``min_pixels``/``max_pixels``, given when vLLM builds it, and ignores ``size``."""
    if remote_code:
        return {"min_pixels": min_pixels, "max_pixels": max_pixels}
    return {"size": {"shortest_edge": min_pixels, "longest_edge": max_pixels}}


class VllmEngine:
    name = "vllm"
    tasks = ALL_TASKS

    def __init__(self, config: RecognizerConfig, memory_plan=None, on_gpu: bool = False):
        self.config, self.memory_plan, self.on_gpu = config, memory_plan, on_gpu
        self.engine = None
        self.template = pipeline_for(config.pipeline).chat_template
        self.logged_prompt = False
        self.capability: Optional[tuple[int, int]] = None
        self.remote_code = False
        self.errors: Optional[ErrorLog] = None
        self.rpc: Optional[RpcFolder] = None

    def _plan_gpu(self) -> None:
        """On a CUDA machine size the engine from the card's free memory (the memory plan), read with
        NVML so that this process holds no CUDA context of its own."""
        from deployments.gpu_device import GpuUnavailable, Ledger, read_device
        from deployments.gpu_memory import MemoryPlanError, plan_memory

        if self.config.device == "cpu":
            return
        try:
            device = read_device(0)
        except GpuUnavailable as exc:
            if self.config.device == "auto":
                return  # no GPU here: vLLM's CPU build
            raise EngineStartError(f"recognizer.device is {self.config.device!r} but {exc}") from None
        self.on_gpu, self.capability = True, device.capability
        if self.memory_plan is None and "gpu_memory_utilization" not in self.config.engine_kwargs:
            resident = Ledger().resident_gib(device.uuid)
            try:
                self.memory_plan = plan_memory(device.total_gib, device.free_gib, layout_gib=self.config.gpu_reserved_gb or 0.0,
                                               layout_resident_gib=resident, margin_gib=self.config.gpu_margin_gb)
            except MemoryPlanError as exc:
                raise EngineStartError(f"{device.name}: {exc}") from None
            log.info("GPU memory plan on %s: %s", device.name, self.memory_plan.describe())

    async def start(self) -> None:
        try:
            await self._start()
        except BaseException:  # a start that fails leaves no engine process, error log or socket folder
            self.close()
            raise

    async def _start(self) -> None:
        os.environ.setdefault("VLLM_HOST_IP", "127.0.0.1")
        self.errors = errors = ErrorLog()
        errors.install()  # before vLLM is imported: EngineCore's root cause reaches the start-up error
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.v1.engine.async_llm import AsyncLLM

        self._plan_gpu()
        args = engine_args(self.config, self.on_gpu, self.memory_plan, self.capability)
        model = args["model"]
        if model.startswith("/") or model.startswith("."):
            self._check_directory(Path(model))
        log.info("starting vLLM AsyncLLM: %s", args)
        self.rpc = RpcFolder()
        try:
            with self.rpc.active():
                self.engine = AsyncLLM.from_engine_args(AsyncEngineArgs(**args))
        except Exception as exc:  # noqa: BLE001 - vLLM raises many types for one meaning
            plan = self.memory_plan.describe() if self.memory_plan is not None else None
            raise EngineStartError(start_failure(model, exc, errors.since_mark(), HF_VLM_MODEL, plan,
                                                 self.on_gpu)) from None
        self.remote_code = bool(self.engine.model_config.trust_remote_code)
        self.template = await self._template()

    def _check_directory(self, path: Path) -> None:
        if not path.is_dir():
            raise EngineStartError(f"recognition model directory {path} does not exist; set recognizer.model to a "
                                   f"PaddleOCR-VL checkpoint directory or a hub id such as {HF_VLM_MODEL}")
        missing = missing_checkpoint_files(path)
        if missing:
            raise EngineStartError(
                f"recognition model directory {path} lacks {', '.join(missing)}; a fine-tuned (SFT) output "
                f"directory needs them from its base model: copy them from {HF_VLM_MODEL} (or the -1.5 repo it was "
                "trained from)")

    async def _template(self) -> str:
        """The model's chat template rendered for one image and a ``{prompt}`` slot. A model without
        one gets its pipeline's (v1 ends ``Assistant: ``, 1.5/1.6 ``Assistant:\n``), with a warning; a
        template that cannot place the image and the prompt stops the start with the fix."""
        if self.config.chat_template:
            log.info("chat template: recognizer.chat_template")
            return self.config.chat_template
        tokenizer = self.engine.get_tokenizer()  # synchronous in vLLM 0.32 (a coroutine before)
        if inspect.isawaitable(tokenizer):
            tokenizer = await tokenizer
        if not getattr(tokenizer, "chat_template", None):
            spec = pipeline_for(self.config.pipeline)
            log.warning("%s has no chat template; using %s's (pipeline %s)", self.config.model_source, spec.vlm_name,
                        spec.version)
            return spec.chat_template
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
        log.info("chat template: the model's own (%r)", rendered.replace("\x00", "{prompt}"))
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
            "mm_processor_kwargs": pixel_kwargs(request.min_pixels, request.max_pixels, self.remote_code),
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

    def unfinished(self) -> int:
        """Requests the engine still holds (aborted ones are gone)."""
        return 0 if self.engine is None else self.engine.output_processor.get_num_unfinished_requests()

    async def check_health(self) -> None:
        if self.engine is None:
            raise RuntimeError("the vLLM engine is not started")
        await self.engine.check_health()

    async def shutdown(self) -> None:
        self.close()

    def close(self) -> None:
        """Stop the engine (its EngineCore process) and remove its error log and socket folder;
        synchronous, so a replica's teardown (``__del__``) can call it too."""
        if self.engine is not None:
            self.engine.shutdown()
            self.engine = None
        for scratch in (self.errors, self.rpc):
            if scratch is not None:
                scratch.remove()
        self.errors = self.rpc = None
