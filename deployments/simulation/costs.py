"""The cost model: how long one engine step or one layout batch takes on a GPU profile, as
``max(memory time, compute time) + fixed overhead``."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from deployments.simulation import profiles as P


@dataclass
class StepWork:
    """What one engine step computes."""

    prefill_tokens: int = 0
    prefill_context: int = 0  # Σ over prefill tokens of the context each one attends to
    decode_tokens: int = 0
    decode_context: int = 0  # Σ over decoding sequences of their context length
    logits: int = 0  # tokens sampled this step (one per decoding sequence, one per finished prefill)
    images: list[int] = field(default_factory=list)  # vision patches of each image encoded this step


def vision_flops(patches: int) -> float:
    """The vision encoder over one image (weights, attention over all its patches) plus the projector."""
    weights = 2 * P.VISION_PARAMS * patches
    attention = 4 * patches * patches * P.VISION_HIDDEN * P.VISION_LAYERS
    return weights + attention + 2 * P.PROJECTOR_PARAMS * patches / P.MERGE**2


def step_flops(work: StepWork) -> float:
    tokens = work.prefill_tokens + work.decode_tokens
    lm = 2 * P.LM_LAYER_PARAMS * tokens + 4 * P.LM_Q_DIM * P.LM_LAYERS * (work.prefill_context + work.decode_context)
    return lm + 2 * P.LM_HEAD_PARAMS * work.logits + sum(vision_flops(p) for p in work.images)


def step_bytes(work: StepWork) -> float:
    weights = (P.LM_LAYER_PARAMS + P.LM_HEAD_PARAMS) * P.BYTES_PER_PARAM
    if work.images:
        weights += (P.VISION_PARAMS + P.PROJECTOR_PARAMS) * P.BYTES_PER_PARAM
    kv = (work.decode_context + work.decode_tokens + work.prefill_tokens) * P.KV_BYTES_PER_TOKEN
    return weights + kv


def step_seconds(profile: P.GpuProfile, work: StepWork) -> float:
    compute = step_flops(work) / (profile.bf16_tflops * 1e12 * P.COMPUTE_EFFICIENCY)
    memory = step_bytes(work) / (profile.bandwidth_gbs * 1e9 * P.BANDWIDTH_EFFICIENCY)
    return max(compute, memory) + P.STEP_OVERHEAD_S


def layout_batch_seconds(profile: P.GpuProfile, batch: int) -> float:
    compute = batch * P.LAYOUT_GFLOP_PER_PAGE * 1e9 / (profile.bf16_tflops * 1e12 * P.COMPUTE_EFFICIENCY)
    memory = P.LAYOUT_WEIGHTS_GB * 1e9 / (profile.bandwidth_gbs * 1e9 * P.BANDWIDTH_EFFICIENCY)
    return max(compute, memory) + P.LAYOUT_BATCH_OVERHEAD_S


def output_tokens(task: str, seed: int, limit: int) -> int:
    """Generated tokens of one block: log-normal around the task's mean (deterministic per seed)."""
    import random

    mean = P.MEAN_TOKENS.get(task, P.MEAN_TOKENS["ocr"])
    mu = math.log(mean) - P.TOKENS_SIGMA**2 / 2  # so that the mean is `mean`
    return max(1, min(limit, round(random.Random(seed).lognormvariate(mu, P.TOKENS_SIGMA))))
