"""GPU memory planning for PaddleOCR-VL-0.9B on vLLM beside the layout model (pure functions).

Inputs are the card's total and FREE memory (a desktop or another process may hold some), the
layout model's reservation and a safety margin. vLLM V1 checks at start that
``gpu_memory_utilization x total`` is free, so the fraction is computed from free memory, not
total; then weights, activations (profiling peak, CUDA graphs) and the KV cache must fit in it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

GIB = 2**30
WEIGHTS_GIB = 1.89  # vLLM: "Model loading took 1.89 GiB" (bf16)
KV_BYTES_PER_TOKEN = 2 * 18 * 2 * 128 * 2  # K and V x 18 layers x 2 KV heads x head_dim 128 x bf16 = 18 KiB
TOKENS_PER_SEQUENCE = 1024  # a block: ~300 image tokens + prompt + output, with headroom
MIN_KV_GIB = 0.5  # below this the engine thrashes; refuse to start instead
MAX_UTILIZATION = 0.92  # vLLM's own buffers and fragmentation need some of the card even when free


class MemoryPlanError(RuntimeError):
    """The card cannot hold the engine; the message names the numbers and the fix."""


@dataclass(frozen=True, slots=True)
class MemoryPlan:
    """Engine settings and Ray GPU fractions for one card."""

    total_gib: float
    free_gib: float
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


def batched_tokens_for(total_gib: float) -> int:
    """Tokens per engine step: the official 16384, halved on 8 GB cards (smaller profiling peak)."""
    return 8192 if total_gib < 10 else 16384


def activation_gib(max_num_batched_tokens: int, cuda_graphs: bool = True) -> float:
    """Profiling peak beyond weights: a base for the vision encoder, per-token activations, graphs."""
    return round(0.5 + 0.5 * max_num_batched_tokens / 8192 + (0.4 if cuda_graphs else 0.0), 2)


def plan_memory(total_gib: float, free_gib: float, layout_reserve_gib: float = 0.75, margin_gib: float = 0.5,
                cuda_graphs: bool = True, layout_on_gpu: bool = True) -> MemoryPlan:
    """Plan one PaddleOCR-VL engine (and optionally the layout model) on one card."""
    reserve = layout_reserve_gib if layout_on_gpu else 0.0
    budget = min(min(free_gib, total_gib) - reserve - margin_gib, MAX_UTILIZATION * total_gib)
    batched = batched_tokens_for(total_gib)
    act = activation_gib(batched, cuda_graphs)
    # Rounded down: vLLM refuses to start when utilization x total exceeds free memory.
    utilization = math.floor(budget / total_gib * 1000) / 1000
    kv_gib = math.floor((utilization * total_gib - WEIGHTS_GIB - act) * 100) / 100
    if kv_gib < MIN_KV_GIB:
        raise MemoryPlanError(
            f"the GPU has {free_gib:.2f} of {total_gib:.2f} GiB free; after the layout model ({reserve:.2f} GiB) and "
            f"the margin ({margin_gib:.2f} GiB) vLLM would get {budget:.2f} GiB, but weights ({WEIGHTS_GIB} GiB) and "
            f"activations ({act} GiB) leave {kv_gib:.2f} GiB of KV cache (< {MIN_KV_GIB} GiB). Fixes: free GPU memory "
            "(close the desktop session or other CUDA processes), run the layout model on CPU (layout.device: cpu), "
            "lower engine_kwargs.max_num_batched_tokens, or use a larger card")
    kv_tokens = int(kv_gib * GIB // KV_BYTES_PER_TOKEN)
    seqs = max(8, min(512, kv_tokens // TOKENS_PER_SEQUENCE // 8 * 8))
    layout_frac = round(min(0.3, max(0.05, (reserve + 0.05) / total_gib)), 2) if layout_on_gpu else 0.0
    return MemoryPlan(
        total_gib=total_gib, free_gib=free_gib, gpu_memory_utilization=utilization,
        max_num_seqs=seqs, max_num_batched_tokens=batched, max_model_len=8192 if total_gib < 14 else 16384,
        activation_gib=act, kv_cache_gib=kv_gib, kv_tokens=kv_tokens,
        layout_num_gpus=layout_frac, recognizer_num_gpus=round(0.95 - layout_frac, 2))


def plan_for_device(device: int = 0, **kwargs) -> MemoryPlan:
    """Plan from what NVML (through torch) reports for a visible CUDA device."""
    import torch

    free, total = torch.cuda.mem_get_info(device)
    return plan_memory(total / GIB, free / GIB, **kwargs)
