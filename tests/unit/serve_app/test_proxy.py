"""What Serve's proxy does around the API replica: the answer for a lost API replica (it sends
nothing; uvicorn would say a plain 500) is the 503 envelope with Retry-After, responses the proxy
sends pass untouched; request bodies are counted, timed and cut off (``SlowClientGuard``; over real
sockets against the real proxy in ``tests/integration/test_serve_app.py``)."""

from __future__ import annotations

import asyncio

import httpx

import pytest

from serve_app.proxy import SlowClientGuard, LostReplicaAnswer, ProxyLimits, middlewares


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
    assert [m.cls for m in middlewares()] == [SlowClientGuard, LostReplicaAnswer]  # the guard nearest the proxy


# -- SlowClientGuard ----------------------------------------------------------------------------------
class Upload:
    """One request as uvicorn hands it to the proxy: its body messages as the test releases them."""

    def __init__(self, client="10.0.0.1", method="POST"):
        self.scope = {"type": "http", "method": method, "path": "/layout-parsing", "client": (client, 4000)}
        self.chunks: asyncio.Queue = asyncio.Queue()
        self.sent: list[dict] = []

    async def receive(self):
        return await self.chunks.get()

    async def send(self, message):
        self.sent.append(message)

    def status(self):
        starts = [m["status"] for m in self.sent if m["type"] == "http.response.start"]
        return starts[0] if starts else None

    def answer(self) -> dict:
        import json

        return json.loads(b"".join(m.get("body", b"") for m in self.sent if m["type"] == "http.response.body"))


def proxy_app(seen: list):
    """Serve's proxy as the guard sees it: reads the body (then waits for the disconnect), answers 200."""
    async def app(scope, receive, send):
        while True:
            message = await receive()
            seen.append(message["type"])
            if message["type"] == "http.disconnect":
                return  # the proxy cancels the replica's request and sends nothing
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})
    return app


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))  # a safety net: every wait below is bounded by the guard


def test_a_body_that_stops_arriving_is_cut_off_with_a_408_and_frees_its_slot():
    async def scenario():
        seen = []
        guard = SlowClientGuard(proxy_app(seen), ProxyLimits(body_idle_s=0.2))
        upload = Upload()
        upload.chunks.put_nowait({"type": "http.request", "body": b"{", "more_body": True})  # then nothing
        await guard(upload.scope, upload.receive, upload.send)
        return guard, upload, seen
    guard, upload, seen = run(scenario())
    assert seen == ["http.request", "http.disconnect"]  # the proxy saw the client go: the replica's call ends
    assert upload.status() == 408 and "PADDLEOCR_VL_BODY_IDLE_S" in upload.answer()["errorMsg"]
    assert guard.uploads == 0 and not guard.by_client


def test_a_body_that_trickles_is_cut_off_at_the_total_bound():
    async def scenario():
        guard = SlowClientGuard(proxy_app([]), ProxyLimits(body_idle_s=5, body_total_s=0.3))
        upload = Upload()

        async def trickle():
            while True:
                await upload.chunks.put({"type": "http.request", "body": b" ", "more_body": True})
                await asyncio.sleep(0.01)  # pacing of the attacker, not an ordering of the test
        task = asyncio.create_task(trickle())
        await guard(upload.scope, upload.receive, upload.send)
        task.cancel()
        return upload
    upload = run(scenario())
    assert upload.status() == 408 and "PADDLEOCR_VL_BODY_TOTAL_S" in upload.answer()["errorMsg"]


@pytest.mark.parametrize("limits, second_client", [(ProxyLimits(max_uploads=1), "10.0.0.2"),
                                                   (ProxyLimits(max_uploads_per_client=1), "10.0.0.1")])
def test_bodies_beyond_the_upload_limits_get_503_at_once_and_bodiless_requests_pass(limits, second_client):
    async def scenario():
        guard = SlowClientGuard(proxy_app([]), limits)
        held = Upload()
        first = asyncio.create_task(guard(held.scope, held.receive, held.send))
        while guard.uploads < 1:
            await asyncio.sleep(0)
        refused, health, other = Upload(second_client), Upload(second_client, method="GET"), Upload("10.0.0.3")
        await guard(refused.scope, refused.receive, refused.send)  # answered without waiting for anything
        health.chunks.put_nowait({"type": "http.request", "body": b""})
        await guard(health.scope, health.receive, health.send)
        other.chunks.put_nowait({"type": "http.request", "body": b"{}"})
        if limits.max_uploads > 1:  # only the per-client limit: another address still gets in
            await guard(other.scope, other.receive, other.send)
        held.chunks.put_nowait({"type": "http.request", "body": b"{}"})
        await first
        return guard, held, refused, health, other
    guard, held, refused, health, other = run(scenario())
    headers = dict((k.decode(), v) for k, v in refused.sent[0]["headers"])
    assert refused.status() == 503 and headers["retry-after"] == b"5" and headers["connection"] == b"close"
    assert "PADDLEOCR_VL_MAX_UPLOADS" in refused.answer()["errorMsg"]
    assert health.status() == 200 and held.status() == 200
    assert other.status() == (200 if limits.max_uploads > 1 else None)
    assert guard.uploads == 0 and not guard.by_client


def test_limits_come_from_the_environment_and_bad_ones_are_refused():
    limits = ProxyLimits.from_env({"PADDLEOCR_VL_BODY_IDLE_S": "7", "PADDLEOCR_VL_MAX_UPLOADS_PER_CLIENT": "0",
                                   "UNRELATED": "x"})
    assert limits.body_idle_s == 7 and limits.max_uploads_per_client == 0 and limits.max_uploads == 128
    with pytest.raises(ValueError, match="body_total_s"):
        ProxyLimits.from_env({"PADDLEOCR_VL_BODY_TOTAL_S": "-1"})


def test_an_answer_left_unread_is_abandoned_and_the_proxy_told_the_client_is_gone():
    """Serve's proxy as the guard sees it: it sends the answer piece by piece and stops when its
    receive side says the client went. The client never reads: the first piece's send blocks."""
    async def scenario():
        pieces_sent, told_gone = [], asyncio.Event()

        async def proxy(scope, receive, send):
            async def watch():
                while (await receive())["type"] != "http.disconnect":
                    pass
                told_gone.set()
            watcher = asyncio.create_task(watch())
            await send({"type": "http.response.start", "status": 200, "headers": []})
            for n in range(1000):
                if told_gone.is_set():
                    break
                await send({"type": "http.response.body", "body": b"x" * 1000, "more_body": True})
                pieces_sent.append(n)
                await asyncio.sleep(0)
            await watcher

        upload = Upload(method="GET")
        upload.chunks.put_nowait({"type": "http.request", "body": b""})
        never_read = asyncio.Event()

        async def send(message):
            if message["type"] == "http.response.body":
                await never_read.wait()  # uvicorn's send waits while the client's buffers are full
            upload.sent.append(message)

        guard = SlowClientGuard(proxy, ProxyLimits(send_idle_s=0.2))
        await guard(upload.scope, upload.receive, send)
        return pieces_sent, told_gone, upload

    pieces_sent, told_gone, upload = run(scenario())
    assert told_gone.is_set() and len(pieces_sent) < 1000  # the proxy stopped asking the replica for more
    assert [m["type"] for m in upload.sent] == ["http.response.start"]
