"""Named crash points: the steps of the bulk commit protocol and of the job store's writes, where a
test (or an operator checking a deployment) makes the process kill itself, to prove that nothing is
lost or written twice whatever step a crash lands on. Storage engines test durability this way
(RocksDB's kill points, SQLite's crash tests): crash at every step, restart, check the invariant.

Off unless ``PADDLEOCR_VL_CRASH`` is set (one dictionary lookup per point)::

    PADDLEOCR_VL_CRASH="compact:shard#2=KILL"                the 2nd time this process reaches it
    PADDLEOCR_VL_CRASH="commit:pending#3=TERM,stop:compact:shard=KILL"   SIGTERM, then SIGKILL while stopping
    PADDLEOCR_VL_CRASH_ONCE=/tmp/fired                        fire once, across restarts of the process

The signal is a real one sent by the process to itself (``os.kill``): SIGKILL ends it on the spot,
SIGTERM runs its handler as it would for ``ray job stop``. While a phase is set (``phase("stop")``),
a point also answers to its name under that phase (``stop:compact:shard``). With
``PADDLEOCR_VL_CRASH_ONCE`` the first point that fires creates that file, and no point fires while it
exists: a restarted actor (the job manager) goes on instead of crashing again.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections import Counter

ENV, ONCE_ENV = "PADDLEOCR_VL_CRASH", "PADDLEOCR_VL_CRASH_ONCE"
SIGNALS = {"KILL": signal.SIGKILL, "TERM": signal.SIGTERM, "INT": signal.SIGINT}

_reached: Counter = Counter()
_phase = [""]


def parse(spec: str) -> dict[tuple[str, int], signal.Signals]:
    """``point[#n]=SIGNAL`` items, comma-separated → {(point, n): signal}."""
    plan = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        target, _, sig = item.rpartition("=")
        name, _, nth = target.partition("#")
        if not name or sig not in SIGNALS or (nth and not nth.isdigit()):
            raise ValueError(f"{ENV}: bad item {item!r}; write point[#n]=KILL|TERM|INT, e.g. compact:shard#2=KILL")
        plan[(name, int(nth or 1))] = SIGNALS[sig]
    return plan


def reached(name: str) -> None:
    """The process has just finished the step ``name``: crash here if the plan says so."""
    spec = os.environ.get(ENV)
    if not spec:
        return
    plan = parse(spec)
    for key in (name, f"{_phase[0]}:{name}" if _phase[0] else None):
        if key is None:
            continue
        _reached[key] += 1
        sig = plan.get((key, _reached[key]))
        if sig is not None and _arm():
            print(f"[crash point] {key}#{_reached[key]}: {sig.name} to pid {os.getpid()} ({ENV})",
                  file=sys.stderr, flush=True)
            os.kill(os.getpid(), sig)


def _arm() -> bool:
    """False once a point fired with PADDLEOCR_VL_CRASH_ONCE (its file exists); else creates it."""
    marker = os.environ.get(ONCE_ENV)
    if not marker:
        return True
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True


@contextlib.contextmanager
def phase(name: str):
    """Points reached inside also answer to ``name:point``."""
    previous, _phase[0] = _phase[0], name
    try:
        yield
    finally:
        _phase[0] = previous
