"""Per-request layout post-processing options (the official API's ``layout*`` fields)."""

from __future__ import annotations

from typing import Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator

from deployments.labels import V1_MERGE_MODES, V1_THRESHOLDS

MergeMode = Literal["large", "small", "union"]
ShapeMode = Literal["rect", "quad", "poly", "auto"]
Ratio = Union[float, tuple[float, float], dict[int, tuple[float, float]]]


def _positive_pair(value):
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError("an unclip ratio pair must have exactly 2 numbers [width, height]")
        if min(value) <= 0:
            raise ValueError("unclip ratios must be > 0")
    elif isinstance(value, (int, float)) and value <= 0:
        raise ValueError("unclip ratios must be > 0")
    return value


class LayoutOptions(BaseModel):
    """How raw PP-DocLayoutV2 detections become layout boxes (defaults = PaddleX v1 config).

    Example (YAML)::

        threshold: {5: 0.3, 22: 0.35}   # or one float for every class
        nms: true
        unclip_ratio: [1.0, 1.0]
        merge_bboxes_mode: large       # or a per-class dict
        shape_mode: auto               # rect | quad | poly | auto (mask models only)
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    threshold: Union[float, dict[int, float]] = Field(
        default_factory=lambda: dict(V1_THRESHOLDS),
        description="Score threshold, one float or {class_id: threshold}; missing classes use 0.5.",
    )
    nms: bool = Field(True, description="Layout NMS: IoU 0.6 within a class, 0.98 across classes.")
    unclip_ratio: Optional[Ratio] = Field(
        (1.0, 1.0),
        description="Box expansion around the centre: float, [w, h], or {class_id: [w, h]}.",
    )
    merge_bboxes_mode: Optional[Union[MergeMode, dict[int, MergeMode]]] = Field(
        default_factory=lambda: dict(V1_MERGE_MODES),
        description="'large' drops contained boxes, 'small' keeps inner ones, 'union' keeps all.",
    )

    shape_mode: ShapeMode = Field(
        "auto", description="layoutShapeMode: the region outline of a mask model (PP-DocLayoutV3): rect (the box, "
        "no polygons), quad (minimum-area rectangle), poly (the traced outline) or auto (rect, quad or poly, "
        "whichever fits, as PaddleX decides). Crops are masked to the outline (white outside it). PP-DocLayoutV2 "
        "has no masks: its boxes are rectangles whatever this says.")

    @field_validator("threshold")
    @classmethod
    def _check_threshold(cls, value):
        values = value.values() if isinstance(value, dict) else [value]
        if any(not 0.0 <= v <= 1.0 for v in values):
            raise ValueError("must be in [0, 1]")
        return value

    @field_validator("unclip_ratio")
    @classmethod
    def _check_unclip(cls, value):
        if isinstance(value, dict):
            for pair in value.values():
                _positive_pair(pair)
        else:
            _positive_pair(value)
        return value
