"""The document step, for every path: page results in page order → what is returned or written
(restructured first when the options ask for it; a failed page keeps its place, with an empty
Markdown). ``/restructure-pages`` and ``python -m serve_app restructure`` are this step on pages
read back from ``prunedResult``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

from deployments.datamodel import PageError, PageResult
from serve_app.assemble.markdown import page_markdown
from serve_app.assemble.pages import restructure_pages
from serve_app.assemble.pruned import pruned_result

if TYPE_CHECKING:
    from serve_app.options import ParseOptions


@dataclass(slots=True)
class PageText:
    """One page as returned or written: status, error, Markdown and ``prunedResult``."""

    page_index: int
    ok: bool
    error: Optional[PageError]
    markdown: str
    pruned: dict


def assemble_document(results: list[PageResult], options: "ParseOptions") -> list[PageText]:
    """Page results in page order → Markdown and ``prunedResult`` per page."""
    r = options.restructure
    if r.enabled:
        results = restructure_pages(results, r.merge_tables, r.relevel_titles, r.concatenate, options.use_layout)
    return [PageText(p.page_index, p.ok, p.error, page_markdown(p, options) if p.ok else "",
                     pruned_result(p, options)) for p in results]
