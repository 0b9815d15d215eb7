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
import time
from dataclasses import dataclass
from typing import Awaitable, Callable, Optional, TypeVar

from deployments.datamodel import LayoutBox, PageError, PageImage, PageResult
from deployments.recognizer.planning import whole_page_box
from deployments.recognizer.recognizer import PageRequest
from serve_app.assemble import page_markdown, pruned_result, restructure_pages
from serve_app.options import ParseOptions

log = logging.getLogger("serve_app")
Recognize = Callable[[PageImage, list[LayoutBox], PageRequest], Awaitable[PageResult]]
#: Page error kinds worth another try (the engine or a replica, not the page itself).
TRANSIENT = ("recognition_failed", "deadline_exceeded", "internal_error", "overloaded", "replica_lost")
#: Of those, the kinds that say a stage (not this page) was unavailable: still there after the
#: retries, they make a whole-document request a 503 with ``Retry-After``.
UNAVAILABLE = ("overloaded", "replica_lost")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Retries:
    """How a page step that failed for a transient reason is tried again: up to ``count`` more
    times, waiting ``backoff_s`` before each (the last wait repeats), never past the deadline. A
    replica that died is replaced by Serve (or its calls go to a live one), so a retry finds one."""

    count: int = 3
    backoff_s: tuple[float, ...] = (0.5, 2.0, 5.0)
    kinds: tuple[str, ...] = TRANSIENT

    async def run(self, attempt: Callable[[], Awaitable[T]], kind: Callable[[T], Optional[str]],
                  deadline: Optional[float] = None) -> T:
        """``attempt()`` until ``kind(result)`` is not one of ``kinds``, the retries are spent or the
        next one would start past ``deadline`` (``time.monotonic``); the last result is returned."""
        tried = 0
        while True:
            result = await attempt()
            if kind(result) not in self.kinds or tried == self.count:
                return result
            wait = self.backoff_s[min(tried, len(self.backoff_s) - 1)] if self.backoff_s else 0.0
            if deadline is not None and time.monotonic() + wait >= deadline:
                return result
            tried += 1
            log.warning("retrying after %s (try %d of %d, in %.1f s)", kind(result), tried + 1, self.count + 1, wait)
            await asyncio.sleep(wait)


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
        return PageResult.failed(page, stage_error(page.page_index, exc))


async def recognize_with_retries(recognize: Recognize, page: PageImage, boxes: list[LayoutBox], options: ParseOptions,
                                 retries: Retries, deadline: Optional[float] = None) -> PageResult:
    """``recognize_page`` tried again on transient failures; each try gets the time left."""
    def attempt():
        timeout = None if deadline is None else max(deadline - time.monotonic(), 0.001)
        return recognize_page(recognize, page, boxes, options, timeout)

    return await retries.run(attempt, lambda result: result.error.kind if result.error else None, deadline)


def error_kind(exc: BaseException) -> str:
    """The page error kind a stage's exception stands for: overload and lost replicas are named."""
    names = [type(e).__name__ for e in (exc, exc.__cause__) if e is not None]
    if any("BackPressure" in name for name in names):
        return "overloaded"
    if any("ActorDied" in name or "Unavailable" in name or name == "RayActorError" for name in names):
        return "replica_lost"  # Ray's and Serve's errors for a replica that stopped (or one it depended on)
    return "internal_error"


def stage_error(page_index: int, exc: BaseException) -> PageError:
    """A stage's exception as page data."""
    kind, name = error_kind(exc), type(exc).__name__
    if kind == "overloaded":
        return PageError("pipeline", kind, f"page {page_index + 1}: a stage's queue is full (max_queued_requests); "
                         "retry the document later or add replicas")
    if kind == "replica_lost":
        return PageError("pipeline", kind, f"page {page_index + 1}: the replica serving it stopped ({name}) and "
                         "the retries did not find another; retry the document")
    log.error("page %s failed: %s: %s", page_index, name, exc)
    return PageError("pipeline", kind, f"page {page_index + 1} failed: {name}: {exc}")


def assemble_document(results: list[PageResult], options: ParseOptions) -> list[PageText]:
    """Page results in page order → Markdown and ``prunedResult`` per page (restructured first
    when the options ask for it; failed pages keep their place with an empty Markdown)."""
    r = options.restructure
    if r.enabled:
        results = restructure_pages(results, r.merge_tables, r.relevel_titles, r.concatenate, options.use_layout)
    return [PageText(p.page_index, p.ok, p.error, page_markdown(p, options) if p.ok else "",
                     pruned_result(p, options)) for p in results]
