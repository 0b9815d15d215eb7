"""Memory plans per card class against hand-computed budgets (weights 1.89 GiB, 18 KiB of KV
per token), and the failure message when nothing fits."""

import pytest

from deployments.gpu_memory import (KV_BYTES_PER_TOKEN, MemoryPlanError, WEIGHTS_GIB, activation_gib,
                                    plan_memory)

GIB = 2**30


def test_kv_bytes_per_token_is_18_kib():
    assert KV_BYTES_PER_TOKEN == 18 * 1024


@pytest.mark.parametrize("total, batched, act", [(7.96, 8192, 1.4), (11.94, 16384, 1.9), (31.84, 16384, 1.9)])
def test_batched_tokens_and_activation_budget(total, batched, act):
    plan = plan_memory(total, total)
    assert (plan.max_num_batched_tokens, plan.activation_gib) == (batched, act)
    assert activation_gib(8192, cuda_graphs=False) == 1.0


# (card, total GiB, free GiB) -> hand-computed utilization and KV cache:
#   utilization = floor3(min(free - 0.75 layout - 0.5 margin, 0.92 * total) / total)
#   kv = floor2(utilization * total - 1.89 weights - activations)
CASES = [
    ("RTX 5060 8 GB", 7.96, 7.66, 0.805, 3.11),        # 6.41/7.96 -> .805; 6.4078 - 1.89 - 1.4
    ("RTX 5070 12 GB", 11.94, 11.64, 0.870, 6.59),     # 10.39/11.94 -> .870; 10.3878 - 1.89 - 1.9
    ("RTX 5060 Ti 16 GB", 15.92, 15.62, 0.902, 10.56),  # 14.37/15.92 -> .902; 14.3598 - 1.89 - 1.9
    ("RTX 5090 32 GB", 31.84, 31.54, 0.920, 25.50),    # capped: 0.92 * 31.84 = 29.2928 - 3.79
    ("H100 80 GB", 79.19, 78.5, 0.920, 69.06),         # capped: 72.8548 - 3.79
]


@pytest.mark.parametrize("name, total, free, util, kv", CASES, ids=[c[0] for c in CASES])
def test_card_classes(name, total, free, util, kv):
    plan = plan_memory(total, free)
    assert plan.gpu_memory_utilization == pytest.approx(util, abs=0.001)
    assert plan.kv_cache_gib == pytest.approx(kv, abs=0.001)
    assert plan.kv_tokens == int(plan.kv_cache_gib * GIB // KV_BYTES_PER_TOKEN)
    # vLLM checks at start that utilization x total is free: the plan never asks for more.
    assert plan.gpu_memory_utilization * total <= free - 0.75 - 0.5 + 1e-6
    assert WEIGHTS_GIB + plan.activation_gib + plan.kv_cache_gib <= plan.gpu_memory_utilization * total + 0.01
    assert plan.layout_num_gpus + plan.recognizer_num_gpus < 1.0  # headroom for Ray fractions
    assert 8 <= plan.max_num_seqs <= 512 and plan.max_num_seqs % 8 == 0


def test_8gb_card_with_a_desktop_holding_1_2_gb():
    # The seed's error: "Free memory on device (6.77/7.96 GiB) ... less than desired (0.99, 7.88 GiB)".
    plan = plan_memory(7.96, 6.77)
    assert plan.gpu_memory_utilization == pytest.approx((6.77 - 1.25) / 7.96, abs=0.001)  # 0.693, not 0.99
    assert plan.kv_cache_gib == pytest.approx(2.22, abs=0.001)  # 0.693 * 7.96 = 5.5163 - 1.89 - 1.4
    assert plan.max_model_len == 8192 and plan.max_num_seqs >= 64


def test_too_little_memory_names_the_numbers_and_the_fix():
    with pytest.raises(MemoryPlanError) as err:
        plan_memory(5.8, 4.0)  # a 6 GB card with a desktop
    message = str(err.value)
    assert "4.00 of 5.80 GiB free" in message and "weights (1.89 GiB)" in message
    assert "layout.device: cpu" in message and "max_num_batched_tokens" in message


def test_layout_on_cpu_gives_the_recognizer_the_card():
    plan = plan_memory(7.96, 7.66, layout_on_gpu=False)
    assert plan.layout_num_gpus == 0.0 and plan.kv_cache_gib == pytest.approx(3.86, abs=0.001)  # .899 * 7.96 - 3.29
