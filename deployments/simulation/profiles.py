"""Every constant of the GPU simulation, with where it comes from. Figures the simulated engines
produce are labelled "simulated <profile>"; they plan capacity and load-test the pipeline, they are
not measurements of a card.

Sources:
[R] ../shared/reference/gpu-memory-and-speed.md (the project's planning numbers: 905 M parameters,
    18 KiB of KV per token, ~10 TFLOP a page with ~70 % in the vision encoder, ~1,500 output tokens
    a page, compute ceilings at 50 % of peak bf16, the published end-to-end figures).
[C] PaddleOCR-VL-0.9B's config.json (transformers ``PaddleOCRVLConfig``): vision encoder hidden
    1152, 27 layers, MLP 4304, patch 14, 2×2 merge; language model (ERNIE-4.5-0.3B) hidden 1024,
    18 layers, 16 query / 2 KV heads of 128, MLP 3072, vocabulary 103,424.
[N] NVIDIA data sheets: dense bf16 tensor throughput and memory bandwidth (RTX 5060 448 GB/s,
    RTX 4090D 1,008 GB/s, RTX 5090 1,792 GB/s, A100 80 GB SXM 312 TFLOPS / 2,039 GB/s, H200 SXM
    989 TFLOPS / 4,800 GB/s). The RTX 5060 and 5090 figures are the ones [R]'s ceilings imply
    (pages/s × 10 TFLOP ÷ 50 %); the 4090D's is the RTX 4090's 165 TFLOPS scaled by its SMs (114/128),
    the profile for the published 4090D figures [R].
[V] vLLM V1 with CUDA graphs: a scheduler step costs ~2 ms of host time beside the kernels
    (scheduling, sampling, detokenising; measured by vLLM's own benchmarks at small batches).
[P] PP-DocLayoutV2 (RT-DETR-L detector at 800×800 plus a reading-order head): ~170 GFLOP a page
    (RT-DETR-L is 110 GFLOP at 640², scaled by (800/640)²), ~204 MB of weights [R].
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GpuProfile:
    name: str
    memory_gb: float
    bandwidth_gbs: float  # [N]
    bf16_tflops: float  # dense, [N]


PROFILES = {
    "rtx5060": GpuProfile("RTX 5060 8 GB", 8, 448, 40),
    "rtx4090d": GpuProfile("RTX 4090D 24 GB", 24, 1008, 147),
    "rtx5090": GpuProfile("RTX 5090 32 GB", 32, 1792, 212),
    "a100": GpuProfile("A100 80 GB", 80, 2039, 312),
    "h200": GpuProfile("H200 141 GB", 141, 4800, 989),
}

#: Share of peak bf16 reached by compute-bound work (prefill, vision encoder, layout) [R].
COMPUTE_EFFICIENCY = 0.5
#: Share of the memory bandwidth reached by memory-bound decode steps.
BANDWIDTH_EFFICIENCY = 0.8
#: Host time of one engine step beside the kernels, seconds [V].
STEP_OVERHEAD_S = 0.002

# -- PaddleOCR-VL-0.9B [C] ---------------------------------------------------------------------
VISION_HIDDEN, VISION_LAYERS, VISION_MLP = 1152, 27, 4304
LM_HIDDEN, LM_LAYERS, LM_MLP, LM_VOCAB = 1024, 18, 3072, 103_424
LM_Q_DIM, LM_KV_DIM = 16 * 128, 2 * 128
PATCH, MERGE = 14, 2
#: Parameters per vision layer (attention 4·h², MLP 2·h·mlp) and per language-model layer.
VISION_PARAMS = VISION_LAYERS * (4 * VISION_HIDDEN**2 + 2 * VISION_HIDDEN * VISION_MLP)
LM_LAYER_PARAMS = LM_LAYERS * (2 * LM_HIDDEN * LM_Q_DIM + 2 * LM_HIDDEN * LM_KV_DIM + 3 * LM_HIDDEN * LM_MLP)
LM_HEAD_PARAMS = LM_HIDDEN * LM_VOCAB
PROJECTOR_PARAMS = (VISION_HIDDEN * MERGE**2) ** 2 + VISION_HIDDEN * MERGE**2 * LM_HIDDEN
BYTES_PER_PARAM = 2  # bf16
KV_BYTES_PER_TOKEN = 2 * LM_LAYERS * LM_KV_DIM * 2  # K and V, bf16: 18 KiB [R]
#: Tokens of the chat template around a block's image and task prompt.
PROMPT_TOKENS = 12

# -- output lengths ------------------------------------------------------------------------------
#: Mean generated tokens per block by task, log-normal around them: ~15 blocks a page (13 text,
#: a table, a formula) average ~1,500 tokens a page [R]; a table's OTSL is the longest answer.
MEAN_TOKENS = {"ocr": 80, "table": 350, "formula": 60, "chart": 200, "seal": 40, "spotting": 120}
TOKENS_SIGMA = 0.6

# -- PP-DocLayoutV2 [P] -----------------------------------------------------------------------
LAYOUT_GFLOP_PER_PAGE = 170.0
LAYOUT_WEIGHTS_GB = 0.204
LAYOUT_BATCH_OVERHEAD_S = 0.004  # one forward call: kernel launches, post-processing on the GPU
LAYOUT_INPUT = 800
