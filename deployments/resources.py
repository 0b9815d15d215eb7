"""The CPU threads a stage's libraries may use: from the stage's ``num_cpus`` (GPU stages), or from
the machine (the CPU default's ONNX pools, ``cpu_workers``).

Ray sets ``OMP_NUM_THREADS`` to the floor of an actor's ``num_cpus`` (1 below one CPU) before any
library loads. GPU stages still do real CPU work per page or block (resizing and normalising images
for the layout model and for vLLM's processor, JPEG round trips), so the GPU configs give them whole
CPUs, and the stage sets torch's and OpenCV's pools to the same count explicitly (torch may have
been imported before Ray's variable, and OpenCV does not read it).

The offline CPU default (PP-Layout CDLA + PP-OCRv6 on ONNX Runtime) reads many small inputs (a page
for layout, a block or a text line for OCR): one session with many intra-op threads barely uses a
second core on them (measured: 1 and 2 cores gave the same pages/s). So its stages run
``cpu_workers`` single-threaded sessions side by side, one per CPU the machine gives the process, and
pages and blocks are spread over them; the stages' fractional ``num_cpus`` only let Ray place them.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Optional

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


#: ONNX Runtime options for one single-threaded session (rapidocr's and rapid-layout's ``engine_cfg``):
#: no intra-op pool, so nothing spin-waits on cores that the other sessions are using.
ORT_SINGLE_THREAD = {"intra_op_num_threads": 1, "inter_op_num_threads": 1}


def machine_cpus(cgroup_cpu_max: Path = Path("/sys/fs/cgroup/cpu.max")) -> int:
    """CPUs this process may run on: its affinity mask (``taskset``, a container's cpuset), capped by
    a cgroup v2 CPU quota (``docker run --cpus``), rounded up."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:
        quota, period = cgroup_cpu_max.read_text().split()[:2]
        if quota != "max":
            cpus = min(cpus, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return cpus


def cpu_workers_field():
    """The ``cpu_workers`` setting of a stage config (layout and recognizer, used by the lite backends)."""
    from pydantic import Field

    return Field(None, ge=1, description="Offline CPU default (lite layout / lite engine): single-threaded ONNX "
                 "sessions run side by side; empty = one per CPU this replica's machine gives it (affinity, cgroup quota).")


def cpu_workers(setting: Optional[int]) -> int:
    """Parallel single-threaded sessions of a CPU stage: the configured count, else the machine's CPUs."""
    return setting or machine_cpus()
