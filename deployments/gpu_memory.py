"""GPU memory planning for PaddleOCR-VL-0.9B on vLLM beside the layout model (pure functions).

What one card holds when both stages share it::

    layout replica   = CUDA context + layout weights + its forward peak at the configured batch
    EngineCore       = CUDA context + gpu_memory_utilization x total
                       (weights, profiling peak of activations and CUDA graphs, KV cache)
    margin           = left free

vLLM V1 checks, inside its EngineCore process and after that process's CUDA context exists
(``v1/worker/gpu_worker.py``: ``MemorySnapshot`` then ``request_memory``), that
``gpu_memory_utilization x total`` is free. So the fraction is computed from the card's FREE memory
as NVML reports it (reading it through torch would leave a context in the reading process), less the
engine's own context, less the layout model's peak unless that model is already resident (then the
free figure already excludes it), less the margin. It is also capped so that a layout replica that
restarts beside a running engine finds its peak free: start-up order does not matter.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

GIB = 2**30
WEIGHTS_GIB = 1.89  # vLLM: "Model loading took 1.89 GiB" (PaddleOCR-VL-0.9B, bf16)
KV_BYTES_PER_TOKEN = 2 * 18 * 2 * 128 * 2  # K and V x 18 layers x 2 KV heads x head_dim 128 x bf16 = 18 KiB
TOKENS_PER_SEQUENCE = 1024  # a block: ~300 image tokens + prompt + output, with headroom
MIN_KV_GIB = 0.5  # below this the engine thrashes; refuse to start instead
MAX_UTILIZATION = 0.92  # vLLM's own buffers and fragmentation need some of the card even when free
CUDA_CONTEXT_GIB = 0.5  # one process's CUDA context with torch's kernels loaded: 0.3-0.5 GiB; the upper end
MARGIN_GIB = 0.5  # left free: allocator fragmentation, a desktop's growth, NCCL/cuBLAS workspaces
# PP-DocLayoutV2 (RT-DETR-L with a reading-order head; 204 MB of fp32 safetensors) at its fixed
# 800 x 800 input. The per-page activation peak is an estimate (~1 GiB for a batch of 16 in bf16,
# twice that in fp32); the layout replica measures its real peak with a full batch at start, logs it
# against this figure and publishes it (``gpu_device.Ledger``), and a resident layout's measured
# peak replaces the estimate.
# PP-DocLayoutV3 (pipelines 1.5/1.6): 33.2 M parameters (0.124 GiB in fp32: a full-size random-weight
# model counted in transformers 5.19), no separate reading-order head, but a mask head: per page it
# adds the 300 x 200 x 200 mask logits (46 MiB in fp32) and the quarter-resolution mask features
# (128 x 200 x 200, 20 MiB), so its per-page estimate is V2's plus 0.07 GiB (fp32).
LAYOUT_WEIGHTS_GIB = {"PP-DocLayoutV2": {"float32": 0.2, "bfloat16": 0.1, "float16": 0.1},
                      "PP-DocLayoutV3": {"float32": 0.13, "bfloat16": 0.07, "float16": 0.07}}
LAYOUT_PAGE_GIB = {"PP-DocLayoutV2": {"float32": 0.125, "bfloat16": 0.0625, "float16": 0.0625},
                   "PP-DocLayoutV3": {"float32": 0.195, "bfloat16": 0.0975, "float16": 0.0975}}


class MemoryPlanError(RuntimeError):
    """The card cannot hold the engine; the message names the numbers and the fix."""


def layout_peak_gib(batch_size: int, dtype: str, model: str = "PP-DocLayoutV2") -> float:
    """GPU memory one layout replica of ``model`` holds at its peak: context, weights, one full batch."""
    return round(CUDA_CONTEXT_GIB + LAYOUT_WEIGHTS_GIB[model][dtype] + batch_size * LAYOUT_PAGE_GIB[model][dtype], 2)


@dataclass(frozen=True, slots=True)
class MemoryPlan:
    """Engine settings and Ray GPU fractions for one card, with the terms they came from."""

    total_gib: float
    free_gib: float
    layout_gib: float
    layout_resident_gib: float
    engine_context_gib: float
    margin_gib: float
    gpu_memory_utilization: float
    max_num_seqs: int
    max_num_batched_tokens: int
    max_model_len: int
    activation_gib: float
    kv_cache_gib: float
    kv_tokens: int
    layout_num_gpus: float
    recognizer_num_gpus: float

    def engine_args(self) -> dict:
        return {"gpu_memory_utilization": self.gpu_memory_utilization, "max_num_seqs": self.max_num_seqs,
                "max_num_batched_tokens": self.max_num_batched_tokens, "max_model_len": self.max_model_len}

    def as_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        """The plan in one sentence, for logs and start-up errors."""
        return (f"card {self.total_gib:.2f} GiB with {self.free_gib:.2f} free; layout {self.layout_gib:.2f} GiB "
                f"({self.layout_resident_gib:.2f} already resident), EngineCore context {self.engine_context_gib:.2f}, "
                f"margin {self.margin_gib:.2f}; vLLM gpu_memory_utilization {self.gpu_memory_utilization} "
                f"= {self.gpu_memory_utilization * self.total_gib:.2f} GiB: weights {WEIGHTS_GIB}, activations "
                f"{self.activation_gib}, KV cache {self.kv_cache_gib} GiB ({self.kv_tokens} tokens), "
                f"max_num_seqs {self.max_num_seqs}, max_num_batched_tokens {self.max_num_batched_tokens}")


#: The official recipe's engine flags (PaddleOCR-VL's vLLM serving config), the same on every card.
RECIPE_ARGS = {"enable_prefix_caching": False, "mm_processor_cache_gb": 0, "limit_mm_per_prompt": {"image": 1}}
#: Before a plan sizes the engine (it has not seen the card), and on CPU (vLLM's CPU build, eager).
DEFAULT_GPU_ARGS = {"max_num_batched_tokens": 16384, "max_model_len": 8192}
CPU_ARGS = {"max_num_batched_tokens": 16384, "max_model_len": 4096, "enforce_eager": True}
#: Card classes the shipped configs are for (``AppConfig.gpu``): total memory NVML reports, GiB.
CARD_CLASSES = {"8gb": 7.96, "12gb": 11.94, "16gb": 15.92, "24gb": 23.88, "32gb": 31.84, "80gb": 79.19,
                "141gb": 139.8}
#: What an idle card of a class has free (the driver's own share) when a config is planned for it.
IDLE_CARD_USED_GIB = 0.3


def batched_tokens_for(total_gib: float) -> int:
    """Tokens per engine step: the official recipe's 16384, halved on 8 GB cards (smaller profiling
    peak). PaddleX's own CUDA config uses 131072 at utilization 0.5 on datacenter cards; a step that
    large only raises the profiling peak (activations) while blocks of ~300-1,500 tokens fill 16384
    with 10-50 sequences, so the KV cache, not the step, bounds concurrency here."""
    return 8192 if total_gib < 10 else 16384


def activation_gib(max_num_batched_tokens: int, cuda_graphs: bool = True) -> float:
    """Profiling peak beyond weights: a base for the vision encoder, per-token activations, graphs."""
    return round(0.5 + 0.5 * max_num_batched_tokens / 8192 + (0.4 if cuda_graphs else 0.0), 2)


def plan_memory(total_gib: float, free_gib: float, layout_gib: float = 0.0, layout_resident_gib: float = 0.0,
                engine_context_gib: float = CUDA_CONTEXT_GIB, margin_gib: float = MARGIN_GIB,
                cuda_graphs: bool = True) -> MemoryPlan:
    """Plan one PaddleOCR-VL engine on one card.

    ``layout_gib`` is the peak of a layout replica on the same card (0: layout runs elsewhere);
    ``layout_resident_gib`` how much of it is already held by a running layout replica (NVML's free
    figure excludes it, so only the rest is subtracted)."""
    pending = max(0.0, layout_gib - layout_resident_gib)
    room_now = min(free_gib, total_gib) - pending - engine_context_gib - margin_gib
    room_restart = total_gib - max(layout_gib, layout_resident_gib) - engine_context_gib - margin_gib
    budget = min(room_now, room_restart, MAX_UTILIZATION * total_gib)
    batched = batched_tokens_for(total_gib)
    act = activation_gib(batched, cuda_graphs)
    # Rounded down: vLLM refuses to start when utilization x total exceeds free memory.
    utilization = math.floor(budget / total_gib * 1000) / 1000
    kv_gib = math.floor((utilization * total_gib - WEIGHTS_GIB - act) * 100) / 100
    if kv_gib < MIN_KV_GIB:
        raise MemoryPlanError(
            f"the GPU has {free_gib:.2f} of {total_gib:.2f} GiB free; after the layout model ({pending:.2f} GiB "
            f"still to load of its {layout_gib:.2f} GiB peak), the EngineCore's CUDA context ({engine_context_gib:.2f} "
            f"GiB) and the margin ({margin_gib:.2f} GiB) vLLM would get {budget:.2f} GiB, but weights ({WEIGHTS_GIB} "
            f"GiB) and activations ({act} GiB) leave {kv_gib:.2f} GiB of KV cache (< {MIN_KV_GIB} GiB). Fixes: free GPU "
            "memory (close the desktop session or other CUDA processes), lower layout.batch_size or run the layout "
            "model on CPU (layout.device: cpu), lower engine_kwargs.max_num_batched_tokens, or use a larger card")
    kv_tokens = int(kv_gib * GIB // KV_BYTES_PER_TOKEN)
    seqs = max(8, min(512, kv_tokens // TOKENS_PER_SEQUENCE // 8 * 8))
    layout_frac = round(min(0.3, max(0.05, (layout_gib + 0.05) / total_gib)), 2) if layout_gib else 0.0
    return MemoryPlan(
        total_gib=total_gib, free_gib=free_gib, layout_gib=layout_gib, layout_resident_gib=layout_resident_gib,
        engine_context_gib=engine_context_gib, margin_gib=margin_gib, gpu_memory_utilization=utilization,
        max_num_seqs=seqs, max_num_batched_tokens=batched,
        max_model_len=DEFAULT_GPU_ARGS["max_model_len"] if total_gib < 14 else 16384,
        activation_gib=act, kv_cache_gib=kv_gib, kv_tokens=kv_tokens,
        layout_num_gpus=layout_frac, recognizer_num_gpus=round(0.95 - layout_frac, 2))


def plan_card(card: str, layout_gib: float) -> MemoryPlan:
    """The plan of a card class (``CARD_CLASSES``) when it is idle: what a config for that class
    places (Ray GPU fractions) before any replica has seen the real card."""
    if card not in CARD_CLASSES:
        raise MemoryPlanError(f"gpu: {card!r} is not a card class; use one of {', '.join(CARD_CLASSES)}")
    total = CARD_CLASSES[card]
    return plan_memory(total, total - IDLE_CARD_USED_GIB, layout_gib)
