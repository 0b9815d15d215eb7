"""The ``simulated_gpu`` setting of the layout and recognizer configs (used only by the simulated
backend and engine)."""

from __future__ import annotations

from typing import Literal

GpuProfileName = Literal["rtx5060", "rtx4090d", "rtx5090", "a100", "h200"]  # the keys of profiles.PROFILES


def simulated_gpu_field():
    from pydantic import Field

    return Field("rtx5090", description="Simulated backend / engine only: the GPU profile they time "
                 "(deployments/simulation/profiles.py); their figures are labelled 'simulated <profile>'.")
