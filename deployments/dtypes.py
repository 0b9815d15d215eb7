"""What ``dtype: auto`` means on the machine at hand (one rule for layout and recognition)."""

from __future__ import annotations

from typing import Optional

#: bf16 needs compute capability 8.0 (Ampere); vLLM refuses it on older cards (T4, V100: 7.x).
BF16_CAPABILITY = (8, 0)


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


def resolve(dtype: str, capability: Optional[tuple[int, int]]) -> str:
    """A configured dtype with 'auto' resolved for this device."""
    return auto_dtype(capability) if dtype == "auto" else dtype
