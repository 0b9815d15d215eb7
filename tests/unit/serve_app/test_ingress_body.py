"""The API replica's body reader: bodies being read share one budget per replica (503 with
Retry-After beyond it), and a body's bytes leave the budget once it is parsed or refused. Two
requests' bodies are interleaved here by hand: over real HTTP the order in which the replica reads
two arriving bodies is Serve's to choose."""

from __future__ import annotations

import asyncio

import pytest
from starlette.requests import Request

from serve_app.config import AppConfig
from serve_app.errors import ServiceError
from serve_app.ingress import Ingress
from serve_app.protocol import InferRequest

MB = 2**20


def request(chunks: asyncio.Queue) -> Request:
    scope = {"type": "http", "method": "POST", "path": "/layout-parsing", "headers": [], "query_string": b""}
    return Request(scope, receive=chunks.get)


def body(size: int) -> list[bytes]:
    """``{"file": "AAAA…"}`` of ``size`` bytes in 1 MB pieces."""
    data = b'{"file": "' + b"A" * (size - 12) + b'"}'
    return [data[i:i + MB] for i in range(0, len(data), MB)]


def test_bodies_being_read_share_one_budget_and_leave_it_when_read():
    ingress = Ingress(None, None, None, AppConfig(ingress={"max_body_mb": 5, "bodies_in_flight_mb": 6}))

    async def scenario():
        held, other = asyncio.Queue(), asyncio.Queue()
        pieces = body(4 * MB)
        for piece in pieces[:-1]:  # the first body: all but its last piece has arrived
            held.put_nowait({"type": "http.request", "body": piece, "more_body": True})
        first = asyncio.create_task(ingress._body(request(held), InferRequest, "a"))
        while ingress.body_bytes < 3 * MB:
            await asyncio.sleep(0)
        others = body(3 * MB + MB // 2)  # 3 MB held + 3.5 MB > 6 MB: refused at its last piece
        for n, piece in enumerate(others, 1):
            other.put_nowait({"type": "http.request", "body": piece, "more_body": n < len(others)})
        with pytest.raises(ServiceError) as refused:
            await ingress._body(request(other), InferRequest, "b")
        counted_after_refusal = ingress.body_bytes
        held.put_nowait({"type": "http.request", "body": pieces[-1], "more_body": False})
        parsed = await first
        return refused.value, counted_after_refusal, parsed

    refused, counted_after_refusal, parsed = asyncio.run(asyncio.wait_for(scenario(), 60))  # a safety net
    assert refused.status == 503 and refused.retry_after == 5
    assert "ingress.bodies_in_flight_mb 6" in refused.message and "retry shortly" in refused.message
    assert counted_after_refusal == 3 * MB  # the refused body's bytes left the budget at once
    assert len(parsed.file) == 4 * MB - 12 and ingress.body_bytes == 0  # read whole, then out of the budget
