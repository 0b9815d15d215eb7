"""Post-processing of the model's text, per block (PaddleX PaddleOCR-VL rules)."""

from __future__ import annotations

import re
from collections import Counter
from typing import Optional

from deployments.recognizer.otsl import otsl_to_html

TABLE_MIN_COUNT = 5000  # tables shorter than this are never truncated
TEXT_MIN_COUNT = 50


def shortest_repeating_unit(s: str) -> Optional[str]:
    """The shortest substring whose repetition is exactly ``s`` (None if there is none)."""
    n = len(s)
    for i in range(1, n // 2 + 1):
        if n % i == 0 and s[:i] * (n // i) == s:
            return s[:i]
    return None


def repeating_suffix(s: str, min_len: int = 8, min_repeats: int = 5):
    """(prefix, unit, count) when ``s`` ends with ``unit`` repeated at least ``min_repeats`` times."""
    for i in range(len(s) // min_repeats, min_len - 1, -1):
        unit = s[-i:]
        if s.endswith(unit * min_repeats):
            count, rest = 0, s
            while rest.endswith(unit):
                rest, count = rest[:-i], count + 1
            return s[: len(s) - count * i], unit, count
    return None


def truncate_repetitive_content(
    content: str, line_threshold: int = 10, char_threshold: int = 10, min_len: int = 10, min_count: int = 3000
) -> str:
    """Cut degenerate repetition: a repeated trailing phrase, a repeated unit, a repeated line."""
    if len(content) < min_count:
        return content
    stripped = content.strip()
    if not stripped:
        return content
    if "\n" not in stripped and len(stripped) > 100:
        match = repeating_suffix(stripped)
        if match and len(match[1]) * match[2] > len(stripped) * 0.5:
            return match[0]
    if "\n" not in stripped and len(stripped) > min_len:
        unit = shortest_repeating_unit(stripped)
        if unit and len(stripped) // len(unit) >= char_threshold:
            return unit
    lines = [line.strip() for line in content.split("\n") if line.strip()]
    if len(lines) < line_threshold:
        return content
    line, count = Counter(lines).most_common(1)[0]
    if count >= line_threshold and count / len(lines) >= 0.8:
        return line
    return content


def rewrite_latex_delimiters(text: str, label: str) -> str:
    r"""``\(..\)`` → `` $ .. $``, ``\[..\]`` → `` $$ .. $$ `` (other ``$`` removed first)."""
    if not (("\\(" in text and "\\)" in text) or ("\\[" in text and "\\]" in text)):
        return text
    text = text.replace("$", "")
    text = (
        text.replace("\\(", " $ ").replace("\\)", " $")
        .replace("\\[\\[", "\\[").replace("\\]\\]", "\\]")
        .replace("\\[", " $$ ").replace("\\]", " $$ ")
    )
    return text.replace("$", "") if label == "formula_number" else text


_TEXT_RE = re.compile(r"<\|TEXT_START\|>(.*?)<\|TEXT_END\|>", re.S)
_LOC_BLOCK_RE = re.compile(r"<\|LOC_BEGIN\|>(.*?)<\|LOC_END\|>", re.S)
_LOC_RE = re.compile(r"<\|LOC_(\d+)\|>")


def _points(vals, w, h):
    return [(vals[j] / 1000.0 * w, vals[j + 1] / 1000.0 * h) for j in range(0, 8, 2)]


def parse_spotting(text: str, w: int, h: int) -> tuple[str, dict]:
    """``Spotting:`` output → (texts joined by blank lines, {rec_polys, rec_texts})."""
    polys, texts = [], []
    for txt, loc in zip(_TEXT_RE.findall(text), _LOC_BLOCK_RE.findall(text)):
        items = _LOC_RE.findall(loc)
        if len(items) >= 8:
            polys.append(_points(list(map(int, items[:8])), w, h))
            texts.append(txt.strip())
    if not polys or not texts:
        matches, last, i = list(_LOC_RE.finditer(text)), 0, 0
        while i + 7 < len(matches):
            group = matches[i : i + 8]
            polys.append(_points([int(m.group(1)) for m in group], w, h))
            texts.append(text[last : group[0].start()].strip())
            last, i = group[-1].end(), i + 8
    return "\n\n".join(texts), {"rec_polys": polys, "rec_texts": texts}


def postprocess_block_text(text: Optional[str], label: str, crop_size=None) -> tuple[str, Optional[dict], Optional[str]]:
    """Apply every rule to one block's raw output.

    Returns (content, spotting result or None, warning or None). A table whose OTSL cannot be
    parsed keeps its raw text with a warning, where PaddleX would fail the whole batch.
    """
    text = text or ""
    text = truncate_repetitive_content(text, min_count=TABLE_MIN_COUNT if label == "table" else TEXT_MIN_COUNT)
    text = rewrite_latex_delimiters(text, label)
    warning, spotting = None, None
    if label == "table":
        try:
            html_table = otsl_to_html(text)
        except (IndexError, ValueError) as exc:
            html_table, warning = "", f"table output is not valid OTSL ({exc!r}); raw text kept"
        text = html_table or text
    if label == "spotting" and crop_size is not None:
        text, spotting = parse_spotting(text, *crop_size)
    return text, spotting, warning
