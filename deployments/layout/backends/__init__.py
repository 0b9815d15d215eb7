"""Layout backends, chosen by ``LayoutConfig.backend`` through a registry.

A backend turns RGB pages into raw detections ``[cls, score, x1, y1, x2, y2(, order)]`` in page
pixels, using class ids of ``labels``. Backends are imported only when chosen, so a CPU-only
install never imports torch or paddle.
"""

from __future__ import annotations

import importlib
from typing import Protocol, Sequence

import numpy as np

from deployments.layout.config import LayoutConfig


class LayoutBackend(Protocol):
    labels: Sequence[str]

    def predict(self, images: list[np.ndarray], score_floor: float) -> list[np.ndarray]:
        """Raw detections per RGB page (rows sorted or carrying an order column)."""


BACKENDS = {
    "transformers": "deployments.layout.backends.hf:TransformersLayout",
    "paddlex": "deployments.layout.backends.pdx:PaddleXLayout",
    "lite": "deployments.layout.backends.lite:LiteLayout",
}


class LayoutLoadError(RuntimeError):
    """The layout model cannot start; the message names what was looked for and the fix."""


def create_backend(name: str, config: LayoutConfig, device: str) -> LayoutBackend:
    if name not in BACKENDS:
        raise LayoutLoadError(f"unknown layout backend {name!r}; choose one of {sorted(BACKENDS)}")
    module, cls = BACKENDS[name].split(":")
    try:
        backend_cls = getattr(importlib.import_module(module), cls)
    except ImportError as exc:
        extra = {"transformers": "cpu] or [gpu", "paddlex": "paddle", "lite": "test"}[name]
        raise LayoutLoadError(f"layout backend {name!r} needs a package that is not installed ({exc.name}); "
                              f"install it with: pip install 'paddleocr-vl-serve[{extra}]'") from None
    return backend_cls(config, device)
