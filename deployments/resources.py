"""The CPU threads a stage's libraries may use, from the stage's ``num_cpus``.

Ray sets ``OMP_NUM_THREADS`` to the floor of an actor's ``num_cpus`` (1 below one CPU) before any
library loads. GPU stages still do real CPU work per page or block (resizing and normalising images
for the layout model and for vLLM's processor, JPEG round trips), so the GPU configs give them whole
CPUs, and the stage sets torch's and OpenCV's pools to the same count explicitly (torch may have
been imported before Ray's variable, and OpenCV does not read it).
"""

from __future__ import annotations

import logging
import math

log = logging.getLogger(__name__)


def threads_for(num_cpus: float) -> int:
    return max(1, math.floor(num_cpus))


def apply_threads(num_cpus: float) -> None:
    """Thread pools sized to the stage's whole CPUs; below one CPU the process is left as Ray set it."""
    if num_cpus < 1:
        return
    threads = threads_for(num_cpus)
    try:
        import torch

        torch.set_num_threads(threads)
    except ImportError:
        pass
    import cv2

    cv2.setNumThreads(threads)
    log.info("CPU threads for torch and OpenCV: %d (num_cpus %s)", threads, num_cpus)
