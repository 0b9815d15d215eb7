"""What a CUDA card holds right now, read with NVML (no CUDA context in the reading process), and a
node-local ledger where layout replicas publish the GPU memory they measured at start.

The ledger makes the memory plan independent of start-up order: a recognizer that starts after the
layout model sees it resident (NVML's free figure already excludes it) and does not subtract it a
second time; one that starts first reserves the layout's peak. Records of dead processes are
ignored and removed. Processes that cannot see each other's ledger (other containers) fall back to
reserving, which is safe.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

from deployments.gpu_memory import GIB


class GpuUnavailable(RuntimeError):
    """NVML cannot read the card; the message says why and what to install or check."""


@dataclass(frozen=True, slots=True)
class DeviceMemory:
    uuid: str
    name: str
    total_gib: float
    free_gib: float
    capability: tuple[int, int]


def nvml_target(cuda_visible_devices: Optional[str], index: int) -> Union[int, str]:
    """The NVML handle key of the process's CUDA device ``index``: CUDA_VISIBLE_DEVICES (set by Ray
    for GPU actors) lists physical indices or UUIDs; NVML ignores it."""
    if cuda_visible_devices is None:
        return index
    entries = [e.strip() for e in cuda_visible_devices.split(",") if e.strip()]
    if index >= len(entries):
        raise GpuUnavailable(f"no CUDA GPU is visible as device {index} (CUDA_VISIBLE_DEVICES={cuda_visible_devices!r}; "
                             "under Ray a stage sees a GPU only with num_gpus > 0)")
    entry = entries[index]
    return entry if not entry.lstrip("-").isdigit() else int(entry)


def read_device(index: int = 0) -> DeviceMemory:
    """Total and free memory and the compute capability of the process's CUDA device ``index``."""
    try:
        import pynvml
    except ImportError:
        raise GpuUnavailable("NVML bindings are missing: pip install 'paddleocr-vl-serve[gpu]' "
                             "(nvidia-ml-py)") from None
    key = nvml_target(os.environ.get("CUDA_VISIBLE_DEVICES"), index)
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        raise GpuUnavailable(f"no CUDA GPU is visible (NVML: {exc}); check the NVIDIA driver with `nvidia-smi`") from None
    try:
        handle = (pynvml.nvmlDeviceGetHandleByUUID(key) if isinstance(key, str)
                  else pynvml.nvmlDeviceGetHandleByIndex(key))
        info = pynvml.nvmlDeviceGetMemoryInfo(handle)
        uuid, name = pynvml.nvmlDeviceGetUUID(handle), pynvml.nvmlDeviceGetName(handle)
        capability = tuple(pynvml.nvmlDeviceGetCudaComputeCapability(handle))
    except pynvml.NVMLError as exc:
        raise GpuUnavailable(f"NVML could not read CUDA device {index}: {exc}") from None
    finally:
        pynvml.nvmlShutdown()
    text = lambda v: v.decode() if isinstance(v, bytes) else str(v)  # noqa: E731 - older bindings return bytes
    return DeviceMemory(uuid=text(uuid), name=text(name), total_gib=info.total / GIB, free_gib=info.free / GIB,
                        capability=capability)


class Ledger:
    """``<root>/<card uuid>/layout-<pid>.json``: the peak each live layout replica holds on a card."""

    def __init__(self, root: Optional[Path] = None):
        default = Path(tempfile.gettempdir()) / "paddleocr-vl-serve" / "gpu"
        self.root = Path(root or os.environ.get("PADDLEOCR_VL_GPU_LEDGER", default))

    def record(self, uuid: str, peak_gib: float, pid: Optional[int] = None) -> Path:
        folder = self.root / uuid
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"layout-{pid or os.getpid()}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"peak_gib": peak_gib}))
        tmp.replace(path)
        return path

    def resident_gib(self, uuid: str) -> float:
        """GPU memory held by live layout replicas on the card (records of dead ones are removed)."""
        total = 0.0
        for path in sorted((self.root / uuid).glob("layout-*.json")):
            pid = int(path.stem.partition("-")[2])
            if not process_alive(pid):
                path.unlink(missing_ok=True)
                continue
            try:
                total += float(json.loads(path.read_text())["peak_gib"])
            except (OSError, ValueError, KeyError):
                continue  # being rewritten or foreign: reserving the layout's peak instead is safe
        return total


def process_alive(pid: int) -> bool:
    """Whether a process ``pid`` runs on this machine (files named by a dead pid are a killed process's)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True
