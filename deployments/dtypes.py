"""What ``dtype: auto`` means on the machine at hand: by the card for recognition, fp32 for layout;
and which cards the pinned CUDA builds run on at all."""

from __future__ import annotations

from typing import Optional

#: bf16 needs compute capability 8.0 (Ampere); vLLM refuses it on older cards (T4, RTX 20xx: 7.5).
BF16_CAPABILITY = (8, 0)
#: The oldest card the pinned CUDA 13.0 builds of torch and vLLM run on: Turing (7.5). CUDA 13
#: dropped Maxwell, Pascal and Volta (V100: 7.0).
MIN_CAPABILITY = (7, 5)


class UnsupportedGpu(ValueError):
    """A card older than the pinned CUDA builds support."""


def check_card(capability: Optional[tuple[int, int]]) -> None:
    """Refuse, with the reason and the way out, a card the pinned builds have no kernels for (torch
    would fail later with "no kernel image is available")."""
    if capability is not None and tuple(capability) < MIN_CAPABILITY:
        major, minor = capability
        raise UnsupportedGpu(f"this GPU has compute capability {major}.{minor}; the pinned CUDA 13.0 builds of torch "
                             "and vLLM start at 7.5 (Turing: T4, RTX 20xx; Volta such as the V100 and older cards are "
                             "not supported): use a newer card, or run on the CPU (device: cpu)")

#: The layout model's ``dtype: auto`` on every device, GPUs included. PaddleX runs PP-DocLayoutV2 in
#: fp32; in bf16 the reading-order head's coordinate embeddings (boxes on a 0-1000 grid) move in steps
#: of 2-4 and the class-threshold mask is taken on bf16 scores, so boxes and reading order drift from
#: PaddleX. The model is small; bf16 (or fp16) is an explicit opt-in that halves activation memory.
LAYOUT_AUTO = "float32"


def auto_dtype(capability: Optional[tuple[int, int]]) -> str:
    """'bfloat16' on GPUs that have it (Ampere, Ada, Hopper, Blackwell), 'float16' on older GPUs,
    'float32' without a GPU (``capability`` None)."""
    if capability is None:
        return "float32"
    return "bfloat16" if tuple(capability) >= BF16_CAPABILITY else "float16"


def cuda_capability(device: int = 0) -> Optional[tuple[int, int]]:
    """The CUDA device's compute capability, or None without CUDA (torch imported lazily)."""
    import torch

    if not torch.cuda.is_available():
        return None
    return tuple(torch.cuda.get_device_capability(device))


def resolve(dtype: str, capability: Optional[tuple[int, int]], auto: Optional[str] = None) -> str:
    """A configured dtype with 'auto' resolved for this device: ``auto`` when given (the layout
    passes ``LAYOUT_AUTO``, see ``LayoutConfig.resolved_dtype``), else by the card (``auto_dtype``); an explicit dtype is kept."""
    check_card(capability)
    if dtype != "auto":
        return dtype
    return auto or auto_dtype(capability)
