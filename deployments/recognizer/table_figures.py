"""Figures inside tables: painted over with ``[F<n>]`` tokens before recognition, mapped back
to ``<img>`` tags afterwards (PaddleX ``tokenize_figure_of_table`` / ``untokenize_...``)."""

from __future__ import annotations

import math
import random
import re
from typing import Callable, Optional, Sequence

import numpy as np

MIN_FIGURE_SIDE = 25  # smaller figures are dropped from the page but not tokenized
_TOKEN_RE = re.compile(r"\[F(\d+)\]")


def _token_ids(count: int) -> list[int]:
    """The first ``count`` integers without the digits 0, 1 or 9, shuffled with seed 1024."""
    ids, i = [], 0
    while len(ids) < count:
        if not set(str(i)) & {"0", "1", "9"}:
            ids.append(i)
        i += 1
    random.Random(1024).shuffle(ids)
    return ids


def paint_token(image: np.ndarray, box, token: str) -> np.ndarray:
    """White-out ``box`` and write ``token`` centred in it, as large as fits (in place)."""
    import cv2

    x1, y1, x2, y2 = (int(v) for v in box)
    w, h = x2 - x1, y2 - y1
    cv2.rectangle(image, (x1, y1), (x2, y2), color=(255, 255, 255), thickness=-1)
    font = cv2.FONT_HERSHEY_SIMPLEX
    scale, tw, th = _fit_font_scale(token, font, min(w, h))
    thickness = max(1, math.floor(scale * 4))
    origin = (x1 + (w - tw) // 2, y1 + (h + th) // 2)
    cv2.putText(image, token, origin, font, scale, (0, 0, 0), thickness, lineType=cv2.LINE_AA)
    return image


def _fit_font_scale(text, font, side, fill=0.9):
    import cv2

    lo, hi, best = 0.2, 10.0, 0.2
    while hi - lo > 1e-2:
        mid = (lo + hi) / 2
        (tw, th), _ = cv2.getTextSize(text, font, mid, thickness=1)
        if tw < side * fill and th < side * fill:
            best, lo = mid, mid
        else:
            hi = mid
    return best, tw, th


def tokenize_figures(table_img: np.ndarray, table_box, figures: Sequence[dict]):
    """Paint every figure lying inside the table with a token.

    ``figures`` are dicts with ``coordinate`` and ``path``. Returns (new image, {token: path},
    paths of every figure inside the table — those are dropped from the page's own blocks).
    """
    ids = _token_ids(len(figures))
    tx1, ty1, tx2, ty2 = table_box
    img, token_map, inside = table_img.copy(), {}, []
    for n, fig in enumerate(figures):
        fx1, fy1, fx2, fy2 = fig["coordinate"]
        if not (fx1 >= tx1 and fy1 >= ty1 and fx2 <= tx2 and fy2 <= ty2):
            continue
        inside.append(fig["path"])
        if min(fx2 - fx1, fy2 - fy1) < MIN_FIGURE_SIDE:
            continue
        token = f"[F{ids[n]}]"
        paint_token(img, [fx1 - tx1, fy1 - ty1, fx2 - tx1, fy2 - ty1], token)
        token_map[token] = fig["path"]
    return img, token_map, inside


def untokenize_figures(text: str, token_map: dict[str, str], content_of: Callable[[str], Optional[str]]) -> str:
    """Replace ``[F<n>]`` tokens by the figure's ``<img>`` tag (and its text, if any).

    ``content_of(path)`` returns the recognised content of the image block at ``path`` or None
    when the page has no such block (the token is then left as it is). The tag keeps PaddleX's
    stray quote (``alt="Image""``) so the Markdown stays byte-identical.
    """

    def repl(match: re.Match) -> str:
        path = token_map.get(f"[F{match.group(1)}]", match.group(0))
        content = content_of(path)
        if content is None:
            return match.group(0)
        tag = '<img src="{}" alt="Image"" />'.format(path.replace("-\n", "").replace("\n", " "))
        return tag + ("\n\n" + content + "\n\n" if content != "" else "")

    return _TOKEN_RE.sub(repl, text)
