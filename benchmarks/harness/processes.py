"""Ray's processes on this machine, by name, and the CPU they use."""

from __future__ import annotations

import os
import time
from pathlib import Path

SYSTEM = ("raylet", "gcs_server", "dashboard", "log_monitor", "runtime_env")


def ray_title(title: str) -> str:
    """A Ray process's title (its command line's first word) without the method Ray appends while
    one runs (``ray::MapWorker(MapBatches(LayoutWorker)).submit`` → ``ray::MapWorker(MapBatches(LayoutWorker))``)."""
    return title.split(" ")[0].split(".")[0]


def ray_processes(system: bool = True) -> dict[int, str]:
    """pid → name of every Ray process here: workers by their title (``ray::ServeReplica:<app>:<deployment>``,
    ``ray::ProxyActor``, …; idle workers left out, they come and go) and, with ``system``, the raylet,
    GCS and agents."""
    import psutil

    out = {}
    for proc in psutil.process_iter(["cmdline"]):
        try:
            title = (proc.info["cmdline"] or [""])[0]
        except (psutil.Error, IndexError):
            continue
        if title.startswith("ray::") and not title.startswith("ray::IDLE"):
            out[proc.pid] = ray_title(title)
        elif system and any(k in title for k in SYSTEM):
            out[proc.pid] = Path(title).name.split(" ")[0]
    return out


def ray_cpu_seconds(app: str = "") -> dict[int, tuple[str, float]]:
    """pid → (name, CPU seconds so far) of every Ray process and of this one (the benchmark's
    clients); ``app``'s replicas are named by their deployment, Ray's own processes together."""
    import psutil

    out: dict[int, tuple[str, float]] = {}
    for proc in psutil.process_iter(["name", "cmdline", "cpu_times"]):
        try:
            title = (proc.info["cmdline"] or [proc.info["name"] or ""])[0]
            times = proc.info["cpu_times"]
        except (psutil.Error, IndexError):
            continue
        if proc.pid == os.getpid():
            name = "benchmark clients (HTTP)"
        elif title.startswith("ray::"):
            name = ray_title(title).replace(f"ServeReplica:{app}:", "") if app else ray_title(title)
        elif any(k in title for k in SYSTEM):
            name = "ray system (raylet, gcs, agents)"
        else:
            continue
        if times is not None:
            out[proc.pid] = (name, times.user + times.system)
    return out


def cpu_by_name(before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]]) -> dict[str, float]:
    """CPU seconds each named process group used between two samples (a new process counts from 0)."""
    used: dict[str, float] = {}
    for pid, (name, seconds) in after.items():
        used[name] = used.get(name, 0.0) + seconds - before.get(pid, (name, 0.0))[1]
    return used


def idle_cpu_rates(seconds: float, app: str = "") -> dict[str, float]:
    """CPU seconds a second each named process group uses with no request in flight (Serve's
    controller loop, the dashboard agent, the raylet and GCS tick whether pages come or not)."""
    before = ray_cpu_seconds(app)
    time.sleep(seconds)
    return {name: used / seconds for name, used in cpu_by_name(before, ray_cpu_seconds(app)).items()}
