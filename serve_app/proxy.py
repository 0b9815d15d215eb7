"""What Serve's HTTP proxy does around the API replica: it bounds what slow clients can hold (bodies
that trickle in, answers left unread), and answers when the API replica holding a request dies.

- :class:`SlowClientGuard`: Serve hands a request to the API replica as soon as its headers arrive,
  and the replica then waits for the body while holding one of its request slots; a few hundred
  clients that send their bodies a byte at a time (slowloris) would hold them all, ``/health``
  included. The guard bounds bodies in the proxy: at most ``max_uploads`` bodies arriving at once
  per proxy and ``max_uploads_per_client`` per client address (503 with ``Retry-After`` beyond, sent
  at once), a body that pauses longer than ``body_idle_s`` or takes longer than ``body_total_s`` in
  all is cut off with a 408. Requests without a body (``GET /health``) are never counted. A client
  that leaves its answer unread for ``send_idle_s`` is treated as gone: the proxy cancels the
  replica's work, drops what it holds of the answer and closes the connection. (While a client
  reads, however slowly, the answer is produced ahead of it and held by the proxy and Ray's object
  store: bounded by the answer's size, ``ingress.max_pages`` pages, not by the reader.)
- :class:`LostReplicaAnswer`: for a request whose replica died, Serve's proxy sends no response at
  all (it answers only 408, 429 and 503 itself), so uvicorn falls back to a plain-text "500 Internal
  Server Error". It answers instead with our JSON envelope as a 503 with ``Retry-After``: Serve
  starts a new replica, and the client sends the document again. Every response the proxy does
  send passes untouched.

Installed in the proxy through Ray's hook, set by ``launch.ray_environment`` for every Ray our
launcher, bulk jobs and benchmarks start (and in ``cluster.yaml``'s ``ray start`` commands)::

    RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH=serve_app.proxy:middlewares

The proxy serves every application of the cluster, so its limits are the environment's
(``PADDLEOCR_VL_BODY_IDLE_S`` …, see :class:`ProxyLimits`), read when the proxy starts.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import uuid
from collections import Counter
from typing import Mapping, Optional

from pydantic import BaseModel, ConfigDict, Field

from serve_app.errors import RETRY_SOON_S
from serve_app.protocol import envelope_body

log = logging.getLogger("serve_app")
MESSAGE = ("the API replica serving this request stopped before answering (Serve replaces it); "
           "retry the document")
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class ProxyLimits(BaseModel):
    """The proxy's limits on slow clients; each from ``PADDLEOCR_VL_<NAME>`` when set."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    body_idle_s: float = Field(30, gt=0, description="Longest pause while a request body arrives (408 beyond).")
    body_total_s: float = Field(300, gt=0, description="Longest time a whole request body may take (408 beyond).")
    max_uploads: int = Field(128, ge=1, description="Request bodies arriving at once per proxy (503 beyond); an API "
                             "replica keeps room for 128 of them and for /health beside its documents (config.HEALTH_ROOM).")
    max_uploads_per_client: int = Field(32, ge=0, description="Of those, from one client address (503 beyond); "
                                        "0: no per-client limit (behind a load balancer every client has its address).")
    send_idle_s: float = Field(60, gt=0, description="Longest a client may leave its answer unread (its connection is "
                               "closed and the work behind it cancelled beyond).")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> "ProxyLimits":
        values = {name: environ[f"PADDLEOCR_VL_{name.upper()}"] for name in cls.model_fields
                  if f"PADDLEOCR_VL_{name.upper()}" in environ}
        return cls.model_validate(values)


async def send_envelope(send, status: int, message: str, retry_after: Optional[int] = None,
                        close: bool = False) -> None:
    """The JSON envelope as a whole response; ``close``: the connection closes after it (a body
    left unread is not read on)."""
    body = json.dumps(envelope_body(str(uuid.uuid4()), status, message)).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if close:
        headers.append((b"connection", b"close"))
    if retry_after is not None:
        headers.append((b"retry-after", str(retry_after).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class SlowClientGuard:
    """Pure ASGI middleware: request bodies counted, timed and cut off; answers a client leaves
    unread cut off too (see the module's doc)."""

    def __init__(self, app, limits: Optional[ProxyLimits] = None):
        self.app = app
        self.limits = limits or ProxyLimits.from_env()
        self.uploads = 0
        self.by_client: Counter[str] = Counter()

    def _refusal(self, client: str) -> Optional[str]:
        if self.uploads >= self.limits.max_uploads:
            return f"the server is receiving {self.uploads} request bodies already (PADDLEOCR_VL_MAX_UPLOADS); retry later"
        if self.limits.max_uploads_per_client and self.by_client[client] >= self.limits.max_uploads_per_client:
            return (f"{self.by_client[client]} request bodies from your address are still arriving "
                    "(PADDLEOCR_VL_MAX_UPLOADS_PER_CLIENT); send them faster or fewer at once")
        return None

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limits, client = self.limits, (scope.get("client") or ("?",))[0]
        uploading = scope.get("method") in BODY_METHODS
        if uploading and (refusal := self._refusal(client)):
            return await send_envelope(send, 503, refusal, RETRY_SOON_S, close=True)
        if uploading:
            self.uploads += 1
            self.by_client[client] += 1
        loop = asyncio.get_running_loop()
        deadline, cut, started, stalled = loop.time() + limits.body_total_s, None, False, asyncio.Event()

        def release() -> None:
            nonlocal uploading
            if uploading:
                uploading = False
                self.uploads -= 1
                self.by_client[client] -= 1
                if not self.by_client[client]:
                    del self.by_client[client]

        async def guarded_receive():
            nonlocal cut
            if cut or stalled.is_set():
                return {"type": "http.disconnect"}
            if not uploading:  # the body is in: wait for the client to go, or to stop reading
                return await _first(receive(), stalled.wait(), {"type": "http.disconnect"})
            left = deadline - loop.time()
            try:
                message = await asyncio.wait_for(receive(), max(0.0, min(limits.body_idle_s, left)))
            except asyncio.TimeoutError:
                cut = ("paused longer than", limits.body_idle_s, "IDLE") if left > limits.body_idle_s else \
                      ("took longer than", limits.body_total_s, "TOTAL")
                release()
                return {"type": "http.disconnect"}  # the proxy cancels the replica's request
            if message["type"] != "http.request" or not message.get("more_body"):
                release()
            return message

        async def guarded_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            for piece in _pieces(message):  # a large body in pieces: uvicorn waits for the client between them
                if stalled.is_set():
                    return  # the answer is abandoned; the connection closes when the proxy returns
                try:
                    await asyncio.wait_for(send(piece), limits.send_idle_s)
                except asyncio.TimeoutError:
                    log.warning("a client left its answer unread for %g s (PADDLEOCR_VL_SEND_IDLE_S); closing it",
                                limits.send_idle_s)
                    stalled.set()  # the proxy sees the client gone: it cancels the replica's request

        try:
            await self.app(scope, guarded_receive, guarded_send)
        finally:
            release()
        if cut and not started:
            what, seconds, name = cut
            await send_envelope(send, 408, f"the request body {what} {seconds:g} s (PADDLEOCR_VL_BODY_{name}_S); "
                                "send the body at once, or send a URL instead", close=True)


#: The largest piece of an answer's body handed to uvicorn at once. uvicorn takes a body message
#: whole into its write buffer and waits for the client only before the next one, so an answer sent
#: as one message would sit there for a client that never reads.
SEND_PIECE_BYTES = 256 * 2**10


def _pieces(message: dict) -> list[dict]:
    body = message.get("body", b"")
    if message["type"] != "http.response.body" or len(body) <= SEND_PIECE_BYTES:
        return [message]
    more, starts = message.get("more_body", False), range(0, len(body), SEND_PIECE_BYTES)
    return [{"type": "http.response.body", "body": bytes(body[i:i + SEND_PIECE_BYTES]),
             "more_body": more or i + SEND_PIECE_BYTES < len(body)} for i in starts]


async def _first(awaitable, signal, signalled):
    """``awaitable``'s value, or ``signalled`` if ``signal`` finishes first (the other is cancelled)."""
    value, other = asyncio.ensure_future(awaitable), asyncio.ensure_future(signal)
    try:
        done, _ = await asyncio.wait({value, other}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for future in (value, other):
            if not future.done():
                future.cancel()
    return value.result() if value in done else signalled


class LostReplicaAnswer:
    """Pure ASGI middleware: an HTTP request left without a response gets the 503 envelope."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = False

        async def watched(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watched)
        except Exception:  # noqa: BLE001 - answered below when nothing was sent yet
            if started:
                raise
            log.exception("the proxy failed a request before answering it")
        if not started:
            await send_envelope(send, 503, MESSAGE, RETRY_SOON_S)


def middlewares() -> list:
    """Serve applies them in order, each around the one before: the guard wraps Serve's proxy app
    directly, and the lost-replica answer wraps the guard (it sees the guard's 408 as an answer)."""
    from starlette.middleware import Middleware

    return [Middleware(SlowClientGuard), Middleware(LostReplicaAnswer)]
