"""How much drawing a PDF page asks for, counted before MuPDF draws it.

A Form XObject can draw another one many times, which draws the next many times: 2 KB of PDF can
ask for 10^7 and more drawings, minutes of MuPDF under the process-wide lock that every page of the
replica waits on, and no deadline can stop a render in progress. Counting the ``Do`` operators of
the page and of each form it reaches (each form counted once, its total reused) costs a parse of
the content streams, and a page over the budget fails alone, with a clear error, before it renders.
"""

from __future__ import annotations

import re
from functools import lru_cache

#: Form and image invocations one page may make when drawn (nested ones counted each time): ~1 s
#: of MuPDF on one core here. Real pages stay far below (a form per logo, table cell or glyph run).
MAX_DRAWS = 200_000

_DO = re.compile(rb"/([^\s/\[\]<>(){}%]+)\s+Do\b")
_REF = re.compile(r"/([^\s/\[\]<>(){}%]+)\s+(\d+)\s+0\s+R")


def page_draws(doc, page, limit: int = MAX_DRAWS) -> int:
    """Drawings the page asks for, up to ``limit + 1`` (counting stops beyond it)."""
    names = _xobjects(doc, page.xref)

    @lru_cache(maxsize=None)
    def form_draws(xref: int, depth: int = 0) -> int:
        if depth > 64:  # a loop of forms (MuPDF refuses it too): over the budget
            return limit + 1
        own = _xobjects(doc, xref) or names  # a form without resources uses its parent's
        return _count(_stream(doc, xref), own, lambda child: form_draws(child, depth + 1), limit)

    return _count(page.read_contents(), names, form_draws, limit)


def _count(content: bytes, names: dict[str, int], form_draws, limit: int) -> int:
    total = 0
    for match in _DO.finditer(content or b""):
        xref = names.get(match.group(1).decode("latin-1"))
        total += 1 + (form_draws(xref) if xref is not None else 0)  # an image's own count is 0
        if total > limit:
            return limit + 1
    return total


def _xobjects(doc, xref: int) -> dict[str, int]:
    """Name → xref of the XObjects in an object's ``Resources`` (empty when it has none)."""
    kind, value = doc.xref_get_key(xref, "Resources/XObject")
    if kind == "xref":  # the dictionary is an object of its own
        kind, value = "dict", doc.xref_object(int(value.split()[0]), compressed=True)
    if kind != "dict":
        return {}
    return {name: int(number) for name, number in _REF.findall(value)}


def _stream(doc, xref: int) -> bytes:
    """A Form XObject's content (an image or anything else: nothing, it draws nothing inside)."""
    _, subtype = doc.xref_get_key(xref, "Subtype")
    if subtype != "/Form":
        return b""
    try:
        return doc.xref_stream(xref)
    except Exception:  # noqa: BLE001 - a broken stream draws nothing; MuPDF will say more when rendering
        return b""
