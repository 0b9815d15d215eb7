"""A born-digital PDF page's own text, in the page image's pixel coordinates, and the rule that
decides per block whether to read a text block from it instead of from pixels.

The renderer extracts the words with their boxes (pymupdf; ligatures expanded, unknown glyphs as
U+FFFD) and the share of the page's characters drawn invisibly. A text block is read from the layer
when all of these hold, otherwise the engine reads its pixels (``block_text`` says which failed):

1. the page has a text layer and it is visible — an invisible layer is the OCR of a scan made by
   someone else's engine and may disagree with the pixels;
2. words of the layer lie in the block. Each word belongs to one block only, the one it overlaps
   most (a neighbouring header or footer does not bleed in), and a line belongs whole to the block
   that holds its other words: layout boxes that cut the first or last letters of lines (the CDLA
   model's often do) lose no words;
3. the words are real text: at most 2 % of their characters are U+FFFD, private-use or control
   characters (a font without a Unicode map extracts as such).

Inside the block, words are ordered into lines top to bottom and left to right and joined into one
paragraph with hyphenation undone, as the engines read a text block.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Optional

import numpy as np

log = logging.getLogger(__name__)

LINE_GAP = 0.5  # boxes whose vertical centres differ by less than half a line height share a line
INK = 128  # a pixel darker than this (in every channel) is ink
INVISIBLE_SHARE = 0.5  # above this share of invisible characters the page's layer is an OCR layer
GARBAGE_SHARE = 0.02


@dataclass(slots=True)
class TextLayer:
    """Words of one page: ``boxes`` (N, 4) float32 x0, y0, x1, y1 in the page image's pixels."""

    boxes: np.ndarray
    words: list[str]
    lines: np.ndarray  # (N,) int: the PDF's line of each word
    invisible: float = 0.0


def extract_text_layer(page, scale: float) -> Optional[TextLayer]:
    """The words of a pymupdf page mapped like its pixmap (rotation, then ``scale``); None without
    text, or when the text cannot be extracted (the page is then read from its pixels)."""
    try:
        return _extract(page, scale)
    except Exception:  # noqa: BLE001 - a broken text layer must not cost the page
        log.warning("page %s: its text layer could not be extracted; its pixels are read", page.number + 1,
                    exc_info=True)
        return None


def _extract(page, scale: float) -> Optional[TextLayer]:
    import pymupdf

    flags = pymupdf.TEXT_PRESERVE_WHITESPACE | pymupdf.TEXT_MEDIABOX_CLIP  # ligatures expanded, no CIDs
    words = page.get_text("words", flags=flags)
    if not words:
        return None
    matrix = page.rotation_matrix * pymupdf.Matrix(scale, scale)
    boxes = np.array([tuple(pymupdf.Rect(w[:4]) * matrix) for w in words], dtype=np.float32).reshape(-1, 4)
    total = invisible = 0
    for span in page.get_texttrace():
        n = len(span["chars"])
        total += n
        if span["type"] == 3 or span.get("opacity", 1) == 0:
            invisible += n
    lines = np.array([w[5] * 100_000 + w[6] for w in words], dtype=np.int64)
    return TextLayer(boxes, [w[4] for w in words], lines, invisible / total if total else 0.0)


def order_lines(boxes: np.ndarray, texts: list[str]) -> str:
    """Text boxes (4 corner points each) → one paragraph: lines top to bottom, words left to right,
    lines joined and hyphenation undone, as PaddleOCR-VL reads a text block."""
    if not texts:
        return ""
    tops, bottoms, lefts = boxes[:, :, 1].min(1), boxes[:, :, 1].max(1), boxes[:, :, 0].min(1)
    centres, heights = (tops + bottoms) / 2, np.maximum(bottoms - tops, 1)
    lines: list[list[int]] = []
    for i in np.argsort(centres, kind="stable"):
        if lines and abs(centres[i] - np.mean([centres[j] for j in lines[-1]])) < LINE_GAP * heights[i]:
            lines[-1].append(int(i))
        else:
            lines.append([int(i)])
    rows = [" ".join(texts[j] for j in sorted(line, key=lambda k: lefts[k])) for line in lines]
    return "".join(r[:-1] if r.endswith("-") and n < len(rows) - 1 else r + (" " if n < len(rows) - 1 else "")
                   for n, r in enumerate(rows))


def corners(boxes: np.ndarray) -> np.ndarray:
    """(N, 4) x0, y0, x1, y1 → (N, 4, 2) corner points, the form OCR detectors return."""
    x0, y0, x1, y1 = boxes.T
    return np.stack([np.stack([x0, y0], 1), np.stack([x1, y0], 1), np.stack([x1, y1], 1), np.stack([x0, y1], 1)], 1)


def is_ink(image: np.ndarray) -> np.ndarray:
    """Dark pixels of an RGB (or grey) image."""
    return (image.min(2) if image.ndim == 3 else image) < INK


def fit_to_ink(image: np.ndarray, bbox: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    """Widen a text box whose edge cuts through ink (layout boxes that cut the first or last letters
    of lines): each side moves outward while ink continues, across gaps narrower than 2 % of the
    page width (spaces between words), never past a wider gap (a column gutter) nor by more than
    half the box's width (at least four such gaps)."""
    x0, y0, x1, y1 = bbox
    height, width = image.shape[:2]
    if x1 <= x0 or y1 <= y0:
        return bbox
    ink = is_ink(image[max(0, y0):min(height, y1)]).any(0)
    gap = max(12, round(0.02 * width))
    reach = max((x1 - x0) // 2, 4 * gap)

    def grow(edge: int, step: int) -> int:
        best, blank, pos = edge, 0, edge
        while 0 <= pos + step < width and abs(pos + step - edge) <= reach and blank < gap:
            pos += step
            if ink[pos]:
                best, blank = pos, 0
            else:
                blank += 1
        return best

    return grow(x0, -1), y0, grow(x1 - 1, 1) + 1, y1


def garbage_share(text: str) -> float:
    if not text:
        return 0.0
    bad = sum(1 for c in text if c == "\ufffd" or "\ue000" <= c <= "\uf8ff" or (c < " " and c not in "\t\n"))
    return bad / len(text)


def assign_words(layer: TextLayer, bboxes: list[tuple[int, int, int, int]]) -> list[np.ndarray]:
    """Word indices per block: each word to the block it overlaps most (none: to no block), then
    every word of a line to the block that holds most of that line's words."""
    if not bboxes or not layer.words:
        return [np.zeros(0, np.int64) for _ in bboxes]
    w, b = layer.boxes[:, None, :], np.asarray(bboxes, dtype=np.float32)[None, :, :]
    width = np.clip(np.minimum(w[..., 2], b[..., 2]) - np.maximum(w[..., 0], b[..., 0]), 0, None)
    height = np.clip(np.minimum(w[..., 3], b[..., 3]) - np.maximum(w[..., 1], b[..., 1]), 0, None)
    overlap = width * height  # (words, blocks)
    owner = np.where(overlap.max(1) > 0, overlap.argmax(1), -1)
    for line in np.unique(layer.lines):
        members = np.flatnonzero(layer.lines == line)
        owned = owner[members][owner[members] >= 0]
        if owned.size:
            owner[members] = np.bincount(owned).argmax()
    return [np.flatnonzero(owner == k) for k in range(len(bboxes))]


def block_text(layer: Optional[TextLayer], words: np.ndarray) -> tuple[Optional[str], str]:
    """(text, reason): a block's text from its words of the layer (``assign_words``), or None and
    why its pixels must be read."""
    if layer is None or not layer.words:
        return None, "the page has no text layer"
    if layer.invisible > INVISIBLE_SHARE:
        return None, "the page's text layer is invisible (another engine's OCR over a scan)"
    if words.size == 0:
        return None, "no words of the text layer in the block"
    text = order_lines(corners(layer.boxes[words]), [layer.words[i] for i in words])
    if garbage_share(text) > GARBAGE_SHARE:
        return None, "the text layer is garbled here (a font without a Unicode map)"
    return text, "text layer"
