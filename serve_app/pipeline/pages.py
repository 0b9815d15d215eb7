"""The steps every page takes, whoever drives it (``DocumentPipeline`` for Serve, jobs and the
command line; Ray Data's actors for bulk jobs): the boxes of a page that skips layout detection,
recognition with its retries and its share of the document's deadline.

    rendered PageImage ─ layout_input ─(layout stage)─ recognize_with_retries ─ PageResult
"""

from __future__ import annotations

import asyncio
import time
from typing import Awaitable, Callable, Optional

from deployments.datamodel import ErrorKind, LayoutBox, PageImage, PageResult, Stage
from deployments.recognizer.planning import whole_page_box
from deployments.recognizer.recognizer import PageRequest
from serve_app.errors import page_error
from serve_app.options import ParseOptions
from serve_app.pipeline.retries import Retries

Recognize = Callable[[PageImage, list[LayoutBox], PageRequest], Awaitable[PageResult]]


def layout_input(page: PageImage, options: ParseOptions) -> Optional[list[LayoutBox]]:
    """The boxes of a page that skips the layout stage (layout detection off: one whole-page box
    with the prompt label); None when the layout stage must run."""
    if options.use_layout:
        return None
    return [whole_page_box(page.width, page.height, options.prompt_label)]


def error_kind(result: PageResult) -> Optional[ErrorKind]:
    return result.error.kind if result.error else None


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
        return PageResult.failed(page, page_error(exc, Stage.RECOGNIZE, page.page_index))


async def recognize_with_retries(recognize: Recognize, page: PageImage, boxes: list[LayoutBox], options: ParseOptions,
                                 retries: Retries, deadline: Optional[float] = None) -> PageResult:
    """``recognize_page`` tried again per ``retries``; each try gets the time left until ``deadline``
    (``time.monotonic``; None: the recognizer's ``page_timeout_s``)."""
    def attempt():
        timeout = None if deadline is None else max(deadline - time.monotonic(), 0.001)
        return recognize_page(recognize, page, boxes, options, timeout)

    return await retries.run(attempt, error_kind, deadline)
