"""CPU sizing of the stages: whole-CPU thread pools for GPU stages, ONNX sessions per CPU for the lite ones."""

from __future__ import annotations

import os

import pytest

from deployments.layout.config import LayoutConfig
from deployments.recognizer.config import RecognizerConfig
from deployments.resources import cpu_workers, machine_cpus, threads_for


@pytest.mark.parametrize("cpu_max, expected", [
    ("max 100000\n", None),          # no quota: the affinity mask decides
    ("150000 100000\n", 2),          # docker --cpus 1.5: rounded up
    ("50000 100000\n", 1),           # half a CPU still gets one session
    ("garbage", None),               # unreadable: ignored
])
def test_machine_cpus_is_the_affinity_mask_capped_by_the_cgroup_quota(tmp_path, cpu_max, expected):
    affinity = len(os.sched_getaffinity(0))
    path = tmp_path / "cpu.max"
    path.write_text(cpu_max)
    assert machine_cpus(path) == (affinity if expected is None else min(affinity, expected))
    assert machine_cpus(tmp_path / "missing") == affinity


def test_cpu_workers_default_to_the_machine_and_follow_the_config():
    assert cpu_workers(None) == machine_cpus() >= 1
    assert cpu_workers(3) == 3
    assert LayoutConfig().cpu_workers is None and RecognizerConfig(cpu_workers=4).cpu_workers == 4
    with pytest.raises(ValueError):
        RecognizerConfig(cpu_workers=0)


def test_whole_cpus_size_the_gpu_stages_thread_pools():
    assert [threads_for(c) for c in (0.25, 1, 2.5, 4)] == [1, 1, 2, 4]
