"""The three PaddleOCR-VL pipelines, one record each, as PaddleX 3.7.2 configures them
(``paddlex/configs/pipelines/PaddleOCR-VL.yaml``, ``-1.5.yaml``, ``-1.6.yaml``) and its genai
server serves them (``inference/genai/chat_templates/*.jinja``).

``AppConfig.pipeline`` picks one; everything that differs between versions is read from here and
nowhere else: the layout model and its post-processing defaults, the recognition model's hub id
and served name, its chat template's fallback, and the name reported in results and ``/health``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Union

from deployments.labels import V1_MERGE_MODES, V1_THRESHOLDS
from deployments.layout.options import LayoutOptions

PipelineVersion = Literal["v1", "v1.5", "v1.6"]

_USER = "<|begin_of_sentence|>User: <|IMAGE_START|><|IMAGE_PLACEHOLDER|><|IMAGE_END|>{prompt}\n"


@dataclass(frozen=True)
class Pipeline:
    version: str
    #: PaddleX's ``pipeline_name`` (what ``/health`` and the results' ``dataInfo`` report).
    name: str
    #: PaddleX's ``LayoutDetection.model_name``.
    layout_model: Literal["PP-DocLayoutV2", "PP-DocLayoutV3"]
    #: ``LayoutDetection`` threshold (per class id or flat), NMS, unclip ratio and merge modes.
    threshold: Union[float, dict[int, float]]
    merge_modes: dict[int, str]
    #: ``VLRecognition.model_name``: the name PaddleX sends to its genai server (the served name).
    vlm_name: str
    #: The recognition checkpoint on the hub.
    vlm_hub_id: str
    #: What the chat template ends the user turn with (the model's own template wins; this one is
    #: used for checkpoints without a template, e.g. a fine-tuned output directory).
    assistant_prefix: str
    #: Published score, with the benchmark version it was measured on (not comparable across versions).
    published: str

    @property
    def layout_options(self) -> LayoutOptions:
        return LayoutOptions(threshold=self.threshold, nms=True, unclip_ratio=(1.0, 1.0),
                             merge_bboxes_mode=dict(self.merge_modes))

    @property
    def chat_template(self) -> str:
        """The rendered template with a ``{prompt}`` slot (braces of the template itself doubled)."""
        return _USER + self.assistant_prefix

    @property
    def polygons(self) -> bool:
        """Whether the layout model outlines regions (masks → polygons)."""
        return self.layout_model == "PP-DocLayoutV3"


PIPELINES: dict[str, Pipeline] = {
    "v1": Pipeline("v1", "PaddleOCR-VL", "PP-DocLayoutV2", dict(V1_THRESHOLDS), dict(V1_MERGE_MODES),
                   "PaddleOCR-VL-0.9B", "PaddlePaddle/PaddleOCR-VL", "Assistant: ", "92.56 (OmniDocBench v1.5)"),
    "v1.5": Pipeline("v1.5", "PaddleOCR-VL-1.5", "PP-DocLayoutV3", 0.3, dict(V1_MERGE_MODES),
                     "PaddleOCR-VL-1.5-0.9B", "PaddlePaddle/PaddleOCR-VL-1.5", "Assistant:\n",
                     "94.5 (OmniDocBench v1.5)"),
    "v1.6": Pipeline("v1.6", "PaddleOCR-VL-1.6", "PP-DocLayoutV3", 0.3, dict(V1_MERGE_MODES),
                     "PaddleOCR-VL-1.6-0.9B", "PaddlePaddle/PaddleOCR-VL-1.6", "Assistant:\n",
                     "96.33 (OmniDocBench v1.6)"),
}


def pipeline_for(version: str) -> Pipeline:
    try:
        return PIPELINES[version]
    except KeyError:
        raise ValueError(f"pipeline must be one of {list(PIPELINES)}, got {version!r}") from None
