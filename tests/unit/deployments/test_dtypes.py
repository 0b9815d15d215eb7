"""``dtype: auto`` by the card's compute capability (vLLM refuses bf16 before sm_80)."""

import pytest

from deployments.dtypes import LAYOUT_AUTO, UnsupportedGpu, auto_dtype, resolve
from deployments.recognizer.config import RecognizerConfig
from deployments.recognizer.engines.vllm_engine import engine_args


@pytest.mark.parametrize("capability, dtype", [
    ((12, 0), "bfloat16"),  # RTX 50xx (Blackwell)
    ((9, 0), "bfloat16"),   # H100/H200
    ((8, 9), "bfloat16"),   # L4, RTX 40xx
    ((8, 0), "bfloat16"),   # A100
    ((7, 5), "float16"),    # T4, RTX 20xx
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


@pytest.mark.parametrize("capability", [(12, 0), (9, 0), (7, 5), None])
def test_layout_auto_is_float32_on_every_device_and_an_explicit_dtype_is_kept(capability):
    """PaddleX runs the layout model in fp32; bf16 (which moves reading-order coordinates in steps
    of 2-4 of 1000 and the threshold mask) is an opt-in, so the card does not decide."""
    assert LAYOUT_AUTO == "float32"
    assert resolve("auto", capability, auto=LAYOUT_AUTO) == "float32"
    assert resolve("bfloat16", capability, auto=LAYOUT_AUTO) == "bfloat16"
    assert resolve("float16", capability, auto=LAYOUT_AUTO) == "float16"


def test_layout_config_resolves_auto_to_float32():
    from deployments.layout.config import LayoutConfig

    assert LayoutConfig().resolved_dtype == "float32"
    assert LayoutConfig(dtype="bfloat16").resolved_dtype == "bfloat16"


def test_transformers_layout_resolves_auto_to_float32(monkeypatch):
    """The backend asks for the layout rule, not the card's: auto loads fp32 even where the card has bf16."""
    import torch
    from transformers import PPDocLayoutV2ForObjectDetection

    from deployments import dtypes
    from deployments.layout.backends import hf
    from deployments.layout.config import LayoutConfig

    class Stop(Exception):
        pass

    def from_pretrained(source, dtype):
        raise Stop(dtype)

    hopper = lambda device=0: (9, 0)  # a card with bf16, wherever the backend would ask
    monkeypatch.setattr(dtypes, "cuda_capability", hopper)
    monkeypatch.setattr(hf, "cuda_capability", hopper, raising=False)
    monkeypatch.setattr(PPDocLayoutV2ForObjectDetection, "from_pretrained", from_pretrained)
    for configured, loaded in [("auto", torch.float32), ("bfloat16", torch.bfloat16)]:
        with pytest.raises(Stop) as stop:
            hf.TransformersLayout(LayoutConfig(backend="transformers", model="hub/id", dtype=configured), "cuda:0")
        assert stop.value.args[0] is loaded


@pytest.mark.parametrize("capability", [(7, 0), (6, 1)])  # V100; GTX 10xx
def test_a_card_older_than_the_cuda_13_builds_is_refused_with_the_way_out(capability):
    with pytest.raises(UnsupportedGpu, match=r"compute capability \d\.\d; the pinned CUDA 13.0 builds .* start at 7.5 "
                       r".* use a newer card, or run on the CPU"):
        resolve("auto", capability)
    with pytest.raises(UnsupportedGpu):
        engine_args(RecognizerConfig(model="/m", dtype="float16"), on_gpu=True, capability=capability)
    assert engine_args(RecognizerConfig(model="/m"), on_gpu=False, capability=capability)["dtype"] == "float32"
