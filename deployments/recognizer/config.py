"""Configuration of the recognition stage (engine, model, sampling defaults, limits)."""

from __future__ import annotations

from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

from deployments.pipelines import PipelineVersion
from deployments.recognizer.options import PlanOptions
from deployments.recognizer.repetition import RepetitionStop
from deployments.resources import cpu_workers_field
from deployments.simulation.fields import (GpuProfileName, ImageProcessorMode, simulated_gpu_field,
                                          simulated_image_processor_field)

HF_VLM_MODEL = "PaddlePaddle/PaddleOCR-VL"


class RecognizerConfig(BaseModel):
    """Which engine reads the blocks, with which model, and how.

    Example (YAML)::

        engine: vllm                     # auto | vllm | transformers | lite
        model: PaddlePaddle/PaddleOCR-VL # hub id, local directory or a fine-tuned (SFT) output dir
        engine_kwargs: {max_num_seqs: 128}
        num_gpus: 0.85
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    engine: Literal["auto", "vllm", "transformers", "lite", "simulated"] = Field(
        "auto", description="auto: GPU + weights → vllm; CPU + weights → vllm (CPU build) or transformers; "
        "no weights → lite.")
    pipeline: PipelineVersion = Field(
        "v1", description="Set by the app's `pipeline`: the hub id used when `model` is not set (PaddlePaddle/"
        "PaddleOCR-VL, -1.5, -1.6) and the chat template of a checkpoint that has none.")
    model: Optional[str] = Field(None, description=f"Hub id (e.g. {HF_VLM_MODEL}, -1.5, -1.6) or a local directory "
                                 "(None: the pipeline's hub id).")
    chat_template: Optional[str] = Field(None, description="Jinja template overriding the model's own.")
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = Field(
        "auto", description="auto: bf16 on GPUs from sm_80 (Ampere) on, fp16 before, fp32 on CPU.")
    device: str = Field("auto", description="auto, cpu or cuda.")
    engine_kwargs: dict[str, Any] = Field(default_factory=dict, description="Passed to vLLM AsyncEngineArgs as is.")
    cpu_kv_cache_gb: float = Field(1.0, gt=0, description="KV cache of a CPU vLLM engine, GiB.")
    gpu_reserved_gb: Optional[float] = Field(
        None, ge=0, description="GPU memory kept for the layout model on the same card (its peak). None: the "
        "application fills in the layout config's planned peak when layout runs on a GPU, else 0.")
    gpu_margin_gb: float = Field(0.5, ge=0, description="GPU memory left free as a safety margin.")
    max_new_tokens: int = Field(4096, gt=0, description="Default token limit per block (official: 4096).")
    page_timeout_s: float = Field(600.0, gt=0, description="Deadline for reading one page's blocks.")
    jpeg_quality: Optional[int] = Field(75, ge=1, le=100, description="JPEG round trip before the model, as "
                                        "PaddleX sends crops (None: send raw pixels).")
    repetition_stop: RepetitionStop = Field(default_factory=RepetitionStop)
    plan: PlanOptions = Field(default_factory=PlanOptions, description="Default block-planning options.")
    batch_size: int = Field(8, ge=1, description="transformers engine: blocks per generate() call.")
    num_gpus: float = Field(0.0, ge=0, le=1, description="Ray GPU fraction per replica.")
    num_cpus: float = Field(0.5, gt=0, description="Ray CPUs per replica.")
    cpu_workers: Optional[int] = cpu_workers_field()
    simulated_gpu: GpuProfileName = simulated_gpu_field()
    simulated_image_processor: ImageProcessorMode = simulated_image_processor_field()

    @property
    def model_source(self) -> str:
        """The checkpoint to load: ``model``, else the pipeline's hub id."""
        from deployments.pipelines import pipeline_for

        return self.model or pipeline_for(self.pipeline).vlm_hub_id
