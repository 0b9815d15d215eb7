"""The one page path of Serve and bulk jobs: the steps every page takes and the document step that
turns page results into what is returned or written.

    rendered PageImage ─ layout_input ─(layout stage)─ recognize_page ─ PageResult
    [PageResult] ─ assemble_document(options) ─ [PageText]: Markdown + prunedResult per page

Serve calls the stages by handle (``parser.py``), a bulk job from Ray Data actors (``bulk/``); both
use these functions with the same :class:`ParseOptions`, so the same options give the same bytes.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Awaitable, Callable, Optional

from deployments.datamodel import LayoutBox, PageError, PageImage, PageResult
from deployments.recognizer.planning import whole_page_box
from deployments.recognizer.recognizer import PageRequest
from serve_app.assemble import page_markdown, pruned_result, restructure_pages
from serve_app.options import ParseOptions

log = logging.getLogger("serve_app")
Recognize = Callable[[PageImage, list[LayoutBox], PageRequest], Awaitable[PageResult]]
#: Page error kinds worth another try (the engine or a replica, not the page itself).
TRANSIENT = ("recognition_failed", "deadline_exceeded", "internal_error", "overloaded", "replica_lost")


@dataclass(slots=True)
class PageText:
    """One page as returned or written: status, error, Markdown and ``prunedResult``."""

    page_index: int
    ok: bool
    error: Optional[PageError]
    markdown: str
    pruned: dict


def layout_input(page: PageImage, options: ParseOptions) -> Optional[list[LayoutBox]]:
    """The boxes of a page that skips the layout stage (layout detection off: one whole-page box
    with the prompt label); None when the layout stage must run."""
    if options.use_layout:
        return None
    return [whole_page_box(page.width, page.height, options.prompt_label)]


async def recognize_page(recognize: Recognize, page: PageImage, boxes: list[LayoutBox], options: ParseOptions,
                         timeout_s: Optional[float] = None) -> PageResult:
    """The recognition step; never raises for the page's own failure (it comes back as data)."""
    if page.error is not None:
        return PageResult.failed(page, page.error)
    try:
        return await recognize(page, boxes, options.page_request(timeout_s))
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # noqa: BLE001 - one page's failure must not fail the document
        return PageResult.failed(page, stage_error(page, exc))


def stage_error(page: PageImage, exc: BaseException) -> PageError:
    """A stage's exception as page data: overload and lost replicas are named as such."""
    name = type(exc).__name__
    if "BackPressure" in name:
        return PageError("pipeline", "overloaded", f"page {page.page_index + 1}: a stage's queue is full "
                         "(max_queued_requests); retry the document later or add replicas")
    if "ActorDied" in name or "ActorUnavailable" in name or "Unavailable" in name:
        return PageError("pipeline", "replica_lost", f"page {page.page_index + 1}: the replica serving it stopped "
                         f"({name}); retry the document")
    log.error("page %s failed: %s: %s", page.page_index, name, exc)
    return PageError("pipeline", "internal_error", f"page {page.page_index + 1} failed: {name}: {exc}")


def assemble_document(results: list[PageResult], options: ParseOptions) -> list[PageText]:
    """Page results in page order → Markdown and ``prunedResult`` per page (restructured first
    when the options ask for it; failed pages keep their place with an empty Markdown)."""
    r = options.restructure
    if r.enabled:
        results = restructure_pages(results, r.merge_tables, r.relevel_titles, r.concatenate, options.use_layout)
    return [PageText(p.page_index, p.ok, p.error, page_markdown(p, options) if p.ok else "",
                     pruned_result(p, options)) for p in results]
