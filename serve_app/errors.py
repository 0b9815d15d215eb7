"""One error vocabulary for every path: the blocking call, streamed pages, jobs, bulk jobs, the client.

- A page's or a document's failure is data: ``PageError(Stage, ErrorKind, message)``; the two
  enums are the data model's (``deployments/datamodel.py``).
- :func:`classify` is the one place an exception becomes an :class:`ErrorKind`: Ray's and Serve's
  own exception types by ``isinstance`` (a lost replica, a full queue, an expired call), the
  document's input errors by their kind, anything else as the stage's own failure.
- :class:`ServiceError` is every answer that is not a result: its HTTP status, a message naming the
  problem and the fix, and when to come back (``Retry-After``). :func:`service_error` maps the
  pipeline's exceptions to it; the client raises it too, read back from the envelope.
"""

from __future__ import annotations

import asyncio
from typing import Optional

from deployments.datamodel import ErrorKind, PageError, Stage

#: Retry-After, in seconds: a full queue, an unavailable stage or a deadline clears within seconds;
#: a full job store or a key's job quota only when jobs finish or are fetched.
RETRY_SOON_S, RETRY_LATER_S = 5, 30
#: The kinds that say a stage, not the page, was unavailable: retried on every path; still there
#: after the retries, they end the document with a 503 (never a page result).
UNAVAILABLE = frozenset({ErrorKind.OVERLOADED, ErrorKind.REPLICA_LOST})
#: What a page's own step failing is called, by stage.
_OWN_FAILURE = {Stage.RENDER: ErrorKind.RENDER_FAILED, Stage.LAYOUT: ErrorKind.LAYOUT_FAILED,
                Stage.RECOGNIZE: ErrorKind.RECOGNITION_FAILED}


class ServiceError(Exception):
    """An answer that is not a result: HTTP ``status``, a message that names the fix, and
    ``retry_after`` (seconds) when coming back later helps (429, 503, 504, 507)."""

    def __init__(self, status: int, message: str, retry_after: Optional[int] = None):
        super().__init__(message)
        self.status, self.message, self.retry_after = status, message, retry_after

    def __str__(self) -> str:
        return f"HTTP {self.status}: {self.message}"

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)} if self.retry_after else {}

    def __reduce__(self):  # crosses Ray's actor boundary as itself
        return type(self), (self.status, self.message, self.retry_after)


class TooManyPages(ServiceError):
    """The document exceeds ``ingress.max_pages`` (422, never a silent truncation)."""

    def __init__(self, message: str):
        super().__init__(422, message)


class StageUnavailable(ServiceError):
    """A stage stayed unavailable (its replicas lost or full) through the retries (503)."""

    def __init__(self, message: str):
        super().__init__(503, message, RETRY_SOON_S)


def classify(exc: BaseException, stage: Stage = Stage.PIPELINE) -> ErrorKind:
    """The kind of error an exception raised by ``stage`` (or by a call to it) stands for."""
    from ray.exceptions import (ActorUnavailableError, GetTimeoutError, NodeDiedError, ObjectLostError,
                                RayActorError, TaskCancelledError, WorkerCrashedError)
    from ray.serve.exceptions import BackPressureError

    from deployments.renderer import InputError

    for error in (exc, exc.__cause__):
        if isinstance(error, InputError):
            return ErrorKind(error.kind)
        if isinstance(error, BackPressureError):
            return ErrorKind.OVERLOADED
        if isinstance(error, (RayActorError, ActorUnavailableError, WorkerCrashedError, NodeDiedError,
                              ObjectLostError)):
            return ErrorKind.REPLICA_LOST  # the replica serving the call (or holding its input) stopped
        if isinstance(error, (asyncio.TimeoutError, GetTimeoutError, TaskCancelledError)):
            return ErrorKind.DEADLINE_EXCEEDED
    return _OWN_FAILURE.get(stage, ErrorKind.INTERNAL_ERROR)


def page_error(exc: BaseException, stage: Stage, page_index: int) -> PageError:
    """A stage call's exception as the page's error, with a message that names the fix."""
    kind, name = classify(exc, stage), type(exc).__name__
    where = f"page {page_index + 1}"
    if kind == ErrorKind.OVERLOADED:
        return PageError(stage, kind, f"{where}: the {stage} stage's queue is full (max_queued_requests); retry the "
                         "document later or add replicas")
    if kind == ErrorKind.REPLICA_LOST:
        return PageError(stage, kind, f"{where}: the {stage} replica serving it stopped ({name}) and the retries "
                         "did not find another; retry the document")
    if kind == ErrorKind.DEADLINE_EXCEEDED:
        return PageError(stage, kind, f"{where}: not done within the deadline ({name}); raise deadlineSeconds")
    return PageError(stage, kind, f"{where} failed in the {stage} stage: {name}: {exc}")


def document_error(exc: BaseException) -> PageError:
    """Why a whole document failed before any page ran (a bulk job's row; the HTTP paths answer
    ``service_error`` instead): the input's own problem, its page count, or the renderer's failure."""
    from deployments.renderer import InputError

    if isinstance(exc, InputError):
        return PageError(Stage.RENDER, exc.kind, str(exc))
    if isinstance(exc, TooManyPages):
        return PageError(Stage.RENDER, ErrorKind.TOO_MANY_PAGES, exc.message)
    return PageError(Stage.RENDER, classify(exc, Stage.RENDER), f"{type(exc).__name__}: {exc}")


def service_error(exc: BaseException) -> ServiceError:
    """The answer for an exception that ends a request: our own (options, files, limits, the stages'
    availability, deadlines), the document's input errors (422), anything else 500."""
    from deployments.renderer import InputError

    if isinstance(exc, ServiceError):
        return exc
    if isinstance(exc, InputError):
        return ServiceError(422, str(exc))
    return ServiceError(500, "Internal server error")


def deadline_error(deadline_s: float, done: int, total: int) -> ServiceError:
    """A document that did not finish within its deadline (504): the one message of every path."""
    return ServiceError(504, f"the document was not parsed within {deadline_s:g} s ({done} of {total} pages done); "
                        "raise deadlineSeconds (or ingress.timeout_s), send fewer pages, or use POST "
                        "/jobs/layout-parsing", RETRY_SOON_S)


def lost_pages_error(lost: list[int], total: int, retries: int) -> ServiceError:
    """Pages lost with an unavailable stage through the retries (503): the document again, later."""
    return ServiceError(503, f"{len(lost)} of {total} pages (first: page {lost[0] + 1}) were lost with a stopped or "
                        f"full stage replica after {retries} retries; retry the document", RETRY_SOON_S)


def nearest(name: str, known: list[str]) -> str:
    """``; did you mean 'x'?`` (or the valid names) for an unknown setting or option ``name``."""
    import difflib

    match = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    return f"; did you mean {match[0]!r}?" if match else f"; valid: {', '.join(sorted(known))}"
