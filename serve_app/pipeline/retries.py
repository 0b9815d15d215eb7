"""How a page step that failed for a reason worth another try is tried again: one policy object,
built from each path's config (``ingress.page_retries`` … for Serve, ``--page-retries`` … for bulk)."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Awaitable, Callable, Optional, TypeVar

from deployments.datamodel import ErrorKind
from serve_app.errors import UNAVAILABLE

log = logging.getLogger("serve_app")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Retries:
    """Up to ``count`` more tries of a step whose failure is one of ``kinds``, waiting ``backoff_s``
    before each (the last wait repeats), never past the deadline. A replica that died is replaced
    by Serve (or its calls go to a live one), so a retry finds one."""

    count: int = 3
    backoff_s: tuple[float, ...] = (0.5, 2.0, 5.0)
    kinds: frozenset[ErrorKind] = UNAVAILABLE

    async def run(self, attempt: Callable[[], Awaitable[T]], kind: Callable[[T], Optional[ErrorKind]],
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
