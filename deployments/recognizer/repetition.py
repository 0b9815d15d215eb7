"""Early stop for degenerate repetition loops (PaddleOCR #17903, #16710, #17288): the
engine checks the tail of the text as it streams and aborts a request that is only repeating,
instead of running to the token limit."""

from __future__ import annotations

from typing import Optional

from pydantic import BaseModel, ConfigDict, Field


class RepetitionStop(BaseModel):
    """When a streaming output counts as looping. Tables get a higher bar (rows of empty cells)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(True, description="Stop requests whose output only repeats.")
    check_every_tokens: int = Field(32, ge=1, description="How often the tail is checked.")
    window_chars: int = Field(1200, ge=100, description="How much of the tail is examined.")
    min_repeats: int = Field(12, ge=3, description="Repeats of one unit that make a loop.")
    min_chars: int = Field(300, ge=20, description="Characters the repeats must cover (text).")
    table_min_chars: int = Field(3000, ge=20, description="Characters the repeats must cover (tables).")


def repeated_tail(text: str, rule: RepetitionStop, is_table: bool = False) -> Optional[tuple[str, str]]:
    """(text before the loop, one unit) when the tail repeats, else None."""
    tail = text[-rule.window_chars:]
    need = rule.table_min_chars if is_table else rule.min_chars
    for size in range(1, len(tail) // rule.min_repeats + 1):
        unit = tail[-size:]
        if not tail.endswith(unit * rule.min_repeats):
            continue
        count, rest = 0, text
        while rest.endswith(unit):
            rest, count = rest[: -size], count + 1
        if count * size >= need:
            return rest, unit
        return None
    return None
