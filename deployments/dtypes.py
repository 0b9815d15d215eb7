"""What ``dtype: auto`` means on the machine at hand: by the card for recognition, fp32 for layout."""

from __future__ import annotations

from typing import Optional

#: bf16 needs compute capability 8.0 (Ampere); vLLM refuses it on older cards (T4, V100: 7.x).
BF16_CAPABILITY = (8, 0)

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
    if dtype != "auto":
        return dtype
    return auto or auto_dtype(capability)
