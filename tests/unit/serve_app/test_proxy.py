"""The answer Serve's proxy gives for a lost API replica (it sends nothing; uvicorn would say a
plain 500): the 503 envelope with Retry-After. Responses the proxy sends pass untouched."""

from __future__ import annotations

import asyncio

import httpx

from serve_app.proxy import LostReplicaAnswer, middlewares


def answering(status: int, body: bytes, content_type: bytes):
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", content_type)]})
        await send({"type": "http.response.body", "body": body[:5], "more_body": True})
        await send({"type": "http.response.body", "body": body[5:]})

    return app


async def silent(scope, receive, send):
    """What the proxy does when the replica holding the request died: no response at all."""


async def failing(scope, receive, send):
    raise RuntimeError("proxy bug")


def post(app) -> httpx.Response:
    async def call():
        transport = httpx.ASGITransport(app=LostReplicaAnswer(app))
        async with httpx.AsyncClient(transport=transport, base_url="http://proxy") as client:
            return await client.post("/layout-parsing", json={})

    return asyncio.run(call())


def test_a_request_left_without_an_answer_gets_a_503_envelope_with_retry_after():
    for app in (silent, failing):
        response = post(app)
        assert response.status_code == 503 and response.headers["retry-after"] == "5"
        body = response.json()
        assert body["errorCode"] == 503 and "retry the document" in body["errorMsg"] and body["logId"]


def test_answers_the_proxy_sends_pass_untouched():
    envelope = b'{"logId": "x", "errorCode": 500, "errorMsg": "Internal server error"}'
    assert post(answering(500, envelope, b"application/json")).json()["errorCode"] == 500
    assert post(answering(200, b'{"errorCode": 0}', b"application/json")).status_code == 200
    assert post(answering(404, b"Not Found", b"text/plain")).text == "Not Found"
    assert [m.cls for m in middlewares()] == [LostReplicaAnswer]
