"""The ``simulated_gpu`` setting of the layout and recognizer configs and the recognizer's
``simulated_image_processor`` (used only by the simulated backend and engine)."""

from __future__ import annotations

from typing import Literal

GpuProfileName = Literal["rtx5060", "rtx4090d", "rtx5090", "a100", "h200"]  # the keys of profiles.PROFILES
ImageProcessorMode = Literal["run", "sizes"]


def simulated_gpu_field():
    from pydantic import Field

    return Field("rtx5090", description="Simulated backend / engine only: the GPU profile they time "
                 "(deployments/simulation/profiles.py); their figures are labelled 'simulated <profile>'.")


def simulated_image_processor_field():
    from pydantic import Field

    return Field("run", description="Simulated engine only. run: PaddleOCR-VL's image processor runs on every "
                 "block, for real, as vLLM's front end runs it (the default; the CPU it costs is real). sizes: only "
                 "its output size is computed (get_number_of_image_patches, as vLLM does without an image), no "
                 "pixel work: a diagnostic that shows what the data path allows when the processor costs no CPU "
                 "(a host with CPU to spare, a faster processor); figures from it say so.")
