"""Recognition engines behind one small protocol, chosen by ``RecognizerConfig.engine``.

``VllmEngine`` is the only module importing vLLM, ``TransformersEngine`` the only one importing
transformers' PaddleOCR-VL, ``LiteEngine`` the only one importing rapidocr; each is imported only
when chosen.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Protocol

import numpy as np

ALL_TASKS = frozenset({"ocr", "table", "formula", "chart", "seal", "spotting"})


@dataclass(slots=True)
class GenerationRequest:
    """One block to read: the task prompt, its RGB crop and the sampling settings."""

    request_id: str
    prompt: str
    image: np.ndarray
    min_pixels: int
    max_pixels: int
    max_new_tokens: int = 4096
    temperature: float = 0.0
    top_p: Optional[float] = None
    repetition_penalty: Optional[float] = None
    skip_special_tokens: bool = True
    #: The block's box on its page (what the request reads; engines need not look).
    bbox: Optional[tuple[int, int, int, int]] = None


@dataclass(slots=True)
class GenerationResult:
    """The model's text; ``finish_reason`` is stop, length or repetition (stopped early)."""

    text: str
    num_tokens: int
    finish_reason: str
    token_ids: tuple[int, ...] = ()


class Engine(Protocol):
    name: str
    tasks: frozenset  # the prompt kinds it can read (PROMPTS keys)

    async def start(self) -> None: ...

    async def generate(self, request: GenerationRequest) -> GenerationResult: ...

    async def check_health(self) -> None: ...

    def unfinished(self) -> int: ...  # requests accepted and not finished or aborted yet

    async def shutdown(self) -> None: ...


ENGINES = {
    "vllm": "deployments.recognizer.engines.vllm_engine:VllmEngine",
    "transformers": "deployments.recognizer.engines.hf_engine:TransformersEngine",
    "lite": "deployments.recognizer.engines.lite_engine:LiteEngine",
    "simulated": "deployments.simulation.engine:SimulatedEngine",
}


class EngineStartError(RuntimeError):
    """The engine cannot start; the message names what was looked for and the fix."""


EXTRAS = {"vllm": "gpu] (or [cpu", "transformers": "cpu", "lite": "test", "simulated": "cpu"}


def engine_class(name: str) -> type:
    """The class of engine ``name``, not started (its class attributes: ``best_effort``, ``tasks``)."""
    from deployments.registry import resolve

    return resolve(ENGINES, name, "recognition engine", EngineStartError)


def create_engine(name: str, config) -> Engine:
    from deployments.registry import create

    return create(ENGINES, name, "recognition engine", EXTRAS, EngineStartError, config)
