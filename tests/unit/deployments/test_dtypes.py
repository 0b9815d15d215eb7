"""``dtype: auto`` by the card's compute capability (vLLM refuses bf16 before sm_80)."""

import pytest

from deployments.dtypes import auto_dtype, resolve
from deployments.recognizer.config import RecognizerConfig
from deployments.recognizer.engines.vllm_engine import engine_args


@pytest.mark.parametrize("capability, dtype", [
    ((12, 0), "bfloat16"),  # RTX 50xx (Blackwell)
    ((9, 0), "bfloat16"),   # H100/H200
    ((8, 9), "bfloat16"),   # L4, RTX 40xx
    ((8, 0), "bfloat16"),   # A100
    ((7, 5), "float16"),    # T4, RTX 20xx
    ((7, 0), "float16"),    # V100
    (None, "float32"),      # no GPU
])
def test_auto_dtype_follows_the_card(capability, dtype):
    assert auto_dtype(capability) == dtype
    assert resolve("auto", capability) == dtype and resolve("float32", capability) == "float32"


def test_engine_args_resolve_auto_for_the_card_and_keep_an_explicit_dtype():
    auto = RecognizerConfig(model="/m")
    assert engine_args(auto, on_gpu=True, capability=(7, 5))["dtype"] == "float16"
    assert engine_args(auto, on_gpu=True, capability=(12, 0))["dtype"] == "bfloat16"
    assert engine_args(auto, on_gpu=False)["dtype"] == "float32"
    assert engine_args(RecognizerConfig(model="/m", dtype="bfloat16"), on_gpu=True, capability=(7, 5))["dtype"] == "bfloat16"
