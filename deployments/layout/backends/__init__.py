"""Layout backends, chosen by ``LayoutConfig.backend`` through a registry.

A backend turns RGB pages into raw detections ``[cls, score, x1, y1, x2, y2(, order)]`` in page
pixels, using class ids of ``labels``. Backends are imported only when chosen, so a CPU-only
install never imports torch or paddle.
"""

from __future__ import annotations

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
    "simulated": "deployments.simulation.layout:SimulatedLayout",
}
#: Backends that never use a GPU (no device to resolve, no GPU memory to plan).
CPU_ONLY = frozenset({"lite", "simulated"})


class LayoutLoadError(RuntimeError):
    """The layout model cannot start; the message names what was looked for and the fix."""


EXTRAS = {"transformers": "cpu] or [gpu", "paddlex": "paddle", "lite": "test", "simulated": "test"}


def create_backend(name: str, config: LayoutConfig, device: str) -> LayoutBackend:
    from deployments.registry import create

    return create(BACKENDS, name, "layout backend", EXTRAS, LayoutLoadError, config, device)
