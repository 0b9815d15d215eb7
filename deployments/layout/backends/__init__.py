"""Layout backends, chosen by ``LayoutConfig.backend`` through a registry.

A backend turns RGB pages into raw detections ``[cls, score, x1, y1, x2, y2(, order)]`` in page
pixels, using class ids of ``labels``; a mask model (PP-DocLayoutV3) adds one binary mask per row
(:class:`RawLayout`). Backends are imported only when chosen, so a CPU-only install never imports
torch or paddle.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Protocol, Sequence, Union

import numpy as np

from deployments.layout.config import LayoutConfig

#: The square input side of PP-DocLayoutV2/V3; V3's masks are a quarter of it (200 x 200).
INPUT_SIZE = 800


@dataclass
class RawLayout:
    """One page's raw output of a mask model: ``rows`` as above and ``masks[i]``, row i's binary
    (0/1, uint8) mask over the model's resized input at a quarter of its resolution
    (``INPUT_SIZE // 4`` square), exactly what PaddleX's PP-DocLayoutV3 predictor hands its
    post-processing. Polygons are derived from the masks after post-processing, one rule for every
    backend (``deployments.layout.polygons``)."""

    rows: np.ndarray
    masks: Optional[np.ndarray] = None


Raw = Union[np.ndarray, RawLayout]


class LayoutBackend(Protocol):
    labels: Sequence[str]

    def predict(self, images: list[np.ndarray], score_floor: float) -> list[Raw]:
        """Raw detections per RGB page (rows sorted or carrying an order column), with masks for a
        mask model."""


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
