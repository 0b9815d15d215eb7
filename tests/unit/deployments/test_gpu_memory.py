"""Memory plans per card class against hand-computed budgets (weights 1.89 GiB, 18 KiB of KV per
token, a CUDA context of 0.5 GiB for EngineCore and for the layout replica), start-up in either
order, a layout replica restarting beside a running engine, and every shipped GPU config on its card."""

from pathlib import Path

import pytest

from deployments.gpu_memory import (CUDA_CONTEXT_GIB, KV_BYTES_PER_TOKEN, MemoryPlanError, WEIGHTS_GIB,
                                    activation_gib, layout_peak_gib, plan_memory)
from serve_app.config import load_config

GIB = 2**30
CONFIGS = Path(__file__).resolve().parents[3] / "configs"


def test_kv_bytes_per_token_is_18_kib():
    assert KV_BYTES_PER_TOKEN == 18 * 1024


@pytest.mark.parametrize("total, batched, act", [(7.96, 8192, 1.4), (11.94, 16384, 1.9), (31.84, 16384, 1.9)])
def test_batched_tokens_and_activation_budget(total, batched, act):
    plan = plan_memory(total, total)
    assert (plan.max_num_batched_tokens, plan.activation_gib) == (batched, act)
    assert activation_gib(8192, cuda_graphs=False) == 1.0


@pytest.mark.parametrize("batch, dtype, peak", [
    (4, "float32", 1.2),    # 0.5 context + 0.2 weights + 4 x 0.125
    (8, "float32", 1.7),
    (16, "float32", 2.7),
    (16, "bfloat16", 1.6),  # 0.5 + 0.1 + 16 x 0.0625: the ~1 GiB forward at batch 16 in bf16
    (32, "bfloat16", 2.6),
])
def test_layout_peak_per_batch_size_and_dtype(batch, dtype, peak):
    assert layout_peak_gib(batch, dtype) == pytest.approx(peak)


# (card, total GiB, free GiB, layout peak) -> hand-computed utilization and KV cache:
#   utilization = floor3(min(free - layout - 0.5 context - 0.5 margin, total - layout - 1.0, 0.92 total) / total)
#   kv = floor2(utilization * total - 1.89 weights - activations)
CASES = [
    ("RTX 5060 8 GB", 7.96, 7.66, 1.2, 0.685, 2.16),        # 5.46/7.96 -> .685; 5.4526 - 1.89 - 1.4
    ("RTX 5070 12 GB", 11.94, 11.64, 1.7, 0.748, 5.14),     # 8.94/11.94 -> .748; 8.93112 - 1.89 - 1.9
    ("RTX 5060 Ti 16 GB", 15.92, 15.62, 2.7, 0.748, 8.11),  # 11.92/15.92 -> .748; 11.90816 - 3.79
    ("RTX 5090 32 GB", 31.84, 31.54, 4.7, 0.811, 22.03),    # 25.84/31.84 -> .811; 25.82224 - 3.79
    ("H100 80 GB", 79.19, 78.5, 4.7, 0.919, 68.98),         # 72.8 (< cap 72.85)/79.19 -> .919; 72.77561 - 3.79
]


@pytest.mark.parametrize("name, total, free, layout, util, kv", CASES, ids=[c[0] for c in CASES])
def test_card_classes(name, total, free, layout, util, kv):
    plan = plan_memory(total, free, layout_gib=layout)
    assert plan.gpu_memory_utilization == pytest.approx(util, abs=0.0005)
    assert plan.kv_cache_gib == pytest.approx(kv, abs=0.001)
    assert plan.kv_tokens == int(plan.kv_cache_gib * GIB // KV_BYTES_PER_TOKEN)
    # vLLM checks, after EngineCore's context exists, that utilization x total is free.
    assert plan.gpu_memory_utilization * total <= free - layout - CUDA_CONTEXT_GIB + 1e-6
    assert WEIGHTS_GIB + plan.activation_gib + plan.kv_cache_gib <= plan.gpu_memory_utilization * total + 0.01
    assert plan.layout_num_gpus + plan.recognizer_num_gpus < 1.0  # headroom for Ray fractions
    assert 8 <= plan.max_num_seqs <= 512 and plan.max_num_seqs % 8 == 0
    assert restart_room(plan) >= layout  # a layout replica restarting beside the running engine fits


def restart_room(plan) -> float:
    """Free memory a layout replica finds when it (re)starts beside the running engine."""
    return plan.total_gib - plan.gpu_memory_utilization * plan.total_gib - plan.engine_context_gib - plan.margin_gib


@pytest.mark.parametrize("name, total, free, layout, util, kv", CASES, ids=[c[0] for c in CASES])
def test_start_order_does_not_change_the_plan(name, total, free, layout, util, kv):
    engine_first = plan_memory(total, free, layout_gib=layout)
    # Layout first: it holds its peak, NVML's free figure excludes it, the ledger says it is resident.
    layout_first = plan_memory(total, free - layout, layout_gib=layout, layout_resident_gib=layout)
    assert layout_first.gpu_memory_utilization == engine_first.gpu_memory_utilization
    assert layout_first.kv_cache_gib == engine_first.kv_cache_gib
    # Without the ledger (another container) the layout is reserved twice: smaller, never too big.
    unseen = plan_memory(total, free - layout, layout_gib=layout)
    assert unseen.gpu_memory_utilization < engine_first.gpu_memory_utilization


def test_a_resident_layout_that_measured_more_than_planned_is_what_counts():
    plan = plan_memory(15.92, 15.62 - 3.2, layout_gib=2.7, layout_resident_gib=3.2)
    # free 12.42 - 0 pending - 1.0 = 11.42; restart room total - 3.2 - 1.0 = 11.72 -> 11.42/15.92 -> .717
    assert plan.gpu_memory_utilization == pytest.approx(0.717, abs=0.0005)
    assert restart_room(plan) >= 3.2


def test_a_desktop_holding_memory_lowers_the_plan_and_a_restart_still_fits():
    # The seed's error: "Free memory on device (6.77/7.96 GiB) ... less than desired (0.99, 7.88 GiB)".
    plan = plan_memory(7.96, 6.77, layout_gib=1.2)
    assert plan.gpu_memory_utilization == pytest.approx(0.574, abs=0.0005)  # (6.77 - 2.2) / 7.96, not 0.99
    assert plan.kv_cache_gib == pytest.approx(1.27, abs=0.001)  # 4.56904 - 1.89 - 1.4
    assert plan.max_model_len == 8192 and plan.max_num_seqs >= 64
    assert restart_room(plan) - (7.96 - 6.77) >= 1.2  # the desktop's 1.19 GiB stays held


def test_too_little_memory_names_the_numbers_and_the_fix():
    with pytest.raises(MemoryPlanError) as err:
        plan_memory(5.8, 4.0, layout_gib=1.2)  # a 6 GB card with a desktop
    message = str(err.value)
    assert "4.00 of 5.80 GiB free" in message and "weights (1.89 GiB)" in message
    assert "CUDA context (0.50 GiB)" in message and "1.20 GiB peak" in message
    assert "layout.device: cpu" in message and "max_num_batched_tokens" in message


def test_layout_on_cpu_gives_the_recognizer_the_card():
    plan = plan_memory(7.96, 7.66)
    # 7.66 - 1.0 = 6.66 -> .836; 6.65456 - 3.29
    assert plan.layout_num_gpus == 0.0 and plan.kv_cache_gib == pytest.approx(3.36, abs=0.001)


def test_describe_names_every_term():
    text = plan_memory(7.96, 7.66, layout_gib=1.2).describe()
    for term in ("card 7.96 GiB with 7.66 free", "layout 1.20 GiB", "EngineCore context 0.50", "margin 0.50",
                 "gpu_memory_utilization 0.685", "KV cache 2.16 GiB"):
        assert term in text


# Each shipped GPU config on the card it is written for (total GiB), with 0.3 GiB held by a desktop.
CARDS = {"gpu-8gb.yaml": 7.96, "gpu-12gb.yaml": 11.94, "gpu-16gb.yaml": 15.92, "gpu-24gb.yaml": 23.99,
         "gpu-32gb.yaml": 31.84}


@pytest.mark.parametrize("name", sorted(CARDS))
def test_every_gpu_config_fits_its_card(name):
    import yaml

    total = CARDS[name]
    args = yaml.safe_load((CONFIGS / name).read_text())["applications"][0]["args"]
    config = load_config(args)
    layout = config.recognizer_config().gpu_reserved_gb
    assert config.layout.model_name == "PP-DocLayoutV3"  # the shipped GPU configs run pipeline v1.6
    assert layout == layout_peak_gib(config.layout.batch_size, "float32", "PP-DocLayoutV3")  # auto: fp32 on the card
    plan = plan_memory(total, total - 0.3, layout_gib=layout)
    assert plan.kv_cache_gib >= 1.5 and plan.max_num_seqs >= 64
    assert restart_room(plan) >= layout
    assert config.layout.num_gpus + config.recognizer.num_gpus < 1.0
    assert config.layout.num_cpus >= 1 and config.recognizer.num_cpus >= 2  # whole CPUs for GPU stages
