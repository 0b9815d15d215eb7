"""A document's pages in flight: how many render calls at once, and how many rendered pixels
they may hold together, so that a document's memory is bounded whatever its pages' size."""

from __future__ import annotations

import asyncio
import contextlib
from typing import AsyncIterator


class PageWindow:
    """At most ``calls`` render calls of one document at once, holding at most ``pixels``
    rendered pixels together (~3 bytes each); a call larger than ``pixels`` still goes, alone. A
    call that does not fit waits, and a smaller one behind it may pass it (a document's calls are
    finite, so the large one goes once the window empties)."""

    def __init__(self, calls: int, pixels: int):
        self.calls_left, self.pixels_left, self.pixels = calls, pixels, pixels
        self.changed = asyncio.Condition()

    def _fits(self, pixels: int) -> bool:
        return self.calls_left > 0 and (pixels <= self.pixels_left or self.pixels_left == self.pixels)

    @contextlib.asynccontextmanager
    async def hold(self, pixels: int) -> AsyncIterator[None]:
        async with self.changed:
            await self.changed.wait_for(lambda: self._fits(pixels))
            self.calls_left -= 1
            self.pixels_left -= pixels
        try:
            yield
        finally:
            self.calls_left += 1
            self.pixels_left += pixels
            async with self.changed:  # an uncontended asyncio lock: taken without suspending, even when cancelled
                self.changed.notify_all()
