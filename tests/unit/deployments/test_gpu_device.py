"""NVML device selection under CUDA_VISIBLE_DEVICES, NVML without a driver, and the ledger through
which a layout replica's GPU peak reaches the engine's memory plan (live processes only)."""

import json
import subprocess
import sys

import pytest

from deployments.gpu_device import GpuUnavailable, Ledger, nvml_target, read_device


@pytest.mark.parametrize("visible, index, target", [
    (None, 0, 0),
    (None, 1, 1),
    ("3", 0, 3),                    # Ray gave this actor physical GPU 3: CUDA's device 0 is NVML's 3
    ("2,5", 1, 5),
    ("GPU-8f1c2d3e-aaaa-bbbb-cccc-0123456789ab", 0, "GPU-8f1c2d3e-aaaa-bbbb-cccc-0123456789ab"),
])
def test_cuda_visible_devices_maps_to_the_nvml_device(visible, index, target):
    assert nvml_target(visible, index) == target


def test_an_actor_without_gpus_sees_none():
    with pytest.raises(GpuUnavailable, match="no CUDA GPU is visible as device 0.*num_gpus > 0"):
        nvml_target("", 0)


def test_nvml_without_a_driver_says_so(monkeypatch):
    pynvml = pytest.importorskip("pynvml")
    try:
        pynvml.nvmlInit()
        pynvml.nvmlShutdown()
        pytest.skip("an NVIDIA driver is loaded here")
    except pynvml.NVMLError:
        pass
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    with pytest.raises(GpuUnavailable, match=r"no CUDA GPU is visible \(NVML: .*nvidia-smi"):
        read_device(0)


def test_the_ledger_counts_live_layout_replicas_only(tmp_path):
    ledger = Ledger(tmp_path)
    ledger.record("GPU-a", 1.7)  # this process: alive
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    ledger.record("GPU-a", 2.5, pid=int(dead.stdout))  # exited: its memory is free again
    ledger.record("GPU-b", 9.0)  # another card
    assert ledger.resident_gib("GPU-a") == pytest.approx(1.7)
    assert sorted(p.name for p in (tmp_path / "GPU-a").iterdir()) == [f"layout-{__import__('os').getpid()}.json"]
    assert ledger.resident_gib("GPU-unknown") == 0.0
    assert json.loads(next((tmp_path / "GPU-b").iterdir()).read_text()) == {"peak_gib": 9.0}


def test_a_layout_replica_checks_the_cards_free_memory_against_its_peak_before_taking_a_context(monkeypatch):
    """NVML's reading is replaced here (no GPU on this machine); the rule under test is ours."""
    from deployments import gpu_device
    from deployments.gpu_device import DeviceMemory
    from deployments.layout.backends import LayoutLoadError
    from deployments.layout.detector import resolve_device

    card = DeviceMemory("GPU-x", "NVIDIA GeForce RTX 5060", 7.96, 1.1, (12, 0))
    monkeypatch.setattr(gpu_device, "read_device", lambda index=0: card)
    assert resolve_device("cuda", 1.0) == "cuda:0"
    with pytest.raises(LayoutLoadError, match=r"RTX 5060 has 1\.10 GiB free of 7\.96 GiB; the layout model needs 1\.70 "
                                              r"GiB at its peak.*Lower layout\.batch_size"):
        resolve_device("cuda", 1.7)
