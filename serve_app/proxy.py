"""What Serve's HTTP proxy answers when the API replica holding a request dies mid-way.

For a request whose replica died, Serve's proxy sends no response at all (it answers only 408,
429 and 503 itself), so uvicorn falls back to a plain-text "500 Internal Server Error".
:class:`LostReplicaAnswer` answers instead with our JSON envelope as a 503 with ``Retry-After``:
Serve starts a new replica, and the client sends the document again. Every response the proxy
does send passes untouched.

Installed in the proxy through Ray's hook, set by ``launch.ray_environment`` for every Ray our
launcher, bulk jobs and benchmarks start (and in ``cluster.yaml``'s ``ray start`` commands)::

    RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH=serve_app.proxy:middlewares
"""

from __future__ import annotations

import json
import logging
import uuid

from serve_app.errors import RETRY_SOON_S
from serve_app.protocol import envelope_body

log = logging.getLogger("serve_app")
MESSAGE = ("the API replica serving this request stopped before answering (Serve replaces it); "
           "retry the document")


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
            body = json.dumps(envelope_body(str(uuid.uuid4()), 503, MESSAGE)).encode()
            await send({"type": "http.response.start", "status": 503,
                        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                    (b"retry-after", str(RETRY_SOON_S).encode())]})
            await send({"type": "http.response.body", "body": body})


def middlewares() -> list:
    from starlette.middleware import Middleware

    return [Middleware(LostReplicaAnswer)]
