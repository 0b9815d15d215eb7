"""How a bulk run stops: SIGTERM (``ray job stop``) and SIGINT (Ctrl-C) end it with a
KeyboardInterrupt, but never inside a step of the commit protocol; one that arrives there is raised
when the step is done, and once the run is stopping (its last compaction, its summary) further
signals are ignored.

``install()`` must run after ``ray.init``: Ray's driver start-up sets its own SIGTERM handler
(``sys.exit``), which would end the run anywhere, a compaction's middle included.
"""

from __future__ import annotations

import signal


class GracefulStop:
    def __init__(self):
        self.depth = 0  # steps under way (nested)
        self.requested = False  # a signal arrived inside a step
        self.stopping = False  # the run is ending: signals are ignored

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self._handle)
        signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum, frame) -> None:
        if self.depth or self.stopping:
            self.requested = True
        else:
            raise KeyboardInterrupt

    def step(self) -> "_Step":
        """``with stop.step():`` a step no signal interrupts."""
        return _Step(self)

    def stop(self) -> None:
        """The run is ending (stopped, or done): from here on signals change nothing."""
        self.stopping = True


class _Step:
    def __init__(self, owner: GracefulStop):
        self.owner = owner

    def __enter__(self) -> None:
        self.owner.depth += 1

    def __exit__(self, *exc) -> None:
        owner = self.owner
        owner.depth -= 1
        if not owner.depth and owner.requested and not owner.stopping and exc[0] is None:
            owner.requested = False
            raise KeyboardInterrupt
