"""Per-request options of block planning (which blocks are read, with which prompt and size)."""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, model_validator

from deployments.labels import IMAGE_LABELS, PROMPT_LABELS

#: (min_pixels, max_pixels) per profile. "v1": the hub processor defaults PaddleX 3.3 relied on;
#: "current": what PaddleX 3.4+ sends with every request.
PIXEL_PROFILES: dict[str, tuple[int, int]] = {
    "v1": (147384, 2822400),
    "current": (112896, 1003520),
}
SPOTTING_PIXELS = (112896, 1605632)
PIXEL_KINDS = ("ocr", "table", "chart", "formula", "seal")


class PlanOptions(BaseModel):
    """What to send to the recognition model for each layout block.

    Example (YAML)::

        pixel_profile: current
        use_chart_recognition: true
        kind_pixels: {table: [200704, 2822400]}
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    use_chart_recognition: bool = Field(False, description="Read charts as tables ('Chart Recognition:').")
    use_seal_recognition: bool = Field(False, description="Read seals ('Seal Recognition:', 1.5+ models).")
    use_ocr_for_image_block: bool = Field(False, description="Also send image blocks with 'OCR:'.")
    merge_layout_blocks: bool = Field(True, description="Stack neighbouring text blocks into one call.")
    pixel_profile: Literal["v1", "current"] = Field("current", description="Default min/max pixels.")
    min_pixels: Optional[int] = Field(None, gt=0, description="Overrides the profile's min_pixels.")
    max_pixels: Optional[int] = Field(None, gt=0, description="Overrides the profile's max_pixels.")
    kind_pixels: dict[Literal["ocr", "table", "chart", "formula", "seal"], tuple[int, int]] = Field(
        default_factory=dict, description="Per-kind (min, max) pixels, like vlmExtraArgs ocr_min_pixels…")
    min_side: int = Field(28, ge=1, description="Crops thinner than this are padded with white.")
    max_aspect: float = Field(200.0, gt=1, description="Largest long/short side ratio sent to the model.")
    extreme_aspect: Literal["pad", "skip"] = Field(
        "pad", description="Beyond max_aspect: pad the short side with white, or skip the block.")
    image_fallback: tuple[str, ...] = Field(
        (), description="Labels the engine cannot read (e.g. tables with the lite engine): kept as images.")

    @model_validator(mode="after")
    def _check_pixels(self):
        lo, hi = self.default_pixels()
        if lo > hi:
            raise ValueError(f"min_pixels ({lo}) must not exceed max_pixels ({hi})")
        return self

    def default_pixels(self) -> tuple[int, int]:
        lo, hi = PIXEL_PROFILES[self.pixel_profile]
        return (self.min_pixels or lo, self.max_pixels or hi)

    def pixels_for(self, kind: str) -> tuple[int, int]:
        if kind == "spotting":
            return SPOTTING_PIXELS
        return tuple(self.kind_pixels.get(kind, self.default_pixels()))

    def skipped_labels(self) -> list[str]:
        """Labels emitted as images without a model call (PaddleX ``image_labels``)."""
        labels = [] if self.use_ocr_for_image_block else list(IMAGE_LABELS)
        if not self.use_chart_recognition:
            labels.append("chart")
        if not self.use_seal_recognition:
            labels.append("seal")
        return labels + [label for label in self.fallback_labels() if label not in labels]

    def fallback_labels(self) -> list[str]:
        """Layout labels of the ``image_fallback`` kinds (formula covers every formula label)."""
        kinds = {"formula": ["display_formula", "inline_formula", "formula"]}
        return [label for kind in self.image_fallback for label in kinds.get(kind, [kind])]

    def image_block_labels(self) -> list[str]:
        """Labels whose crops are kept as Markdown images (PaddleX ``vis_image_labels``)."""
        labels = list(IMAGE_LABELS) + ["seal"] + ([] if self.use_chart_recognition else ["chart"])
        return labels + [label for label in self.fallback_labels() if label not in labels]


def check_prompt_label(prompt_label: Optional[str]) -> str:
    """The prompt label used when layout detection is off (default 'ocr'), validated."""
    label = (prompt_label or "ocr").lower()
    if label not in PROMPT_LABELS:
        raise ValueError(f"promptLabel must be one of {list(PROMPT_LABELS)}, got {prompt_label!r}")
    return label
