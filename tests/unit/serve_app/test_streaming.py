"""Streamed page events without Ray: the real DocumentPipeline over the in-process stages
(``test_pipeline``). Over real HTTP: tests/integration/test_jobs.py."""

from __future__ import annotations

import asyncio
import json

from devtools.documents import text_pdf
from serve_app.options import ParseOptions
from serve_app.respond import document_entries
from serve_app.streaming import page_events, stream_format
from test_pipeline import parser


def collect(fmt: str, request: dict, pages: int = 5) -> list[dict]:
    p, _, _ = parser()
    options = ParseOptions.from_request(request)

    async def go():
        doc = await p.open(text_pdf(pages), "pdf", options)
        return [chunk async for chunk in page_events(p, doc, options, "log", fmt)]

    chunks = asyncio.run(go())
    if fmt == "ndjson":
        return [json.loads(c) for c in chunks]
    events = []
    for c in chunks:
        name, data = c.decode().strip().split("\n")
        events.append({"event": name.removeprefix("event: "), **json.loads(data.removeprefix("data: "))})
    return events


def test_stream_events_in_page_order_with_the_sync_entries():
    for fmt in ("ndjson", "sse"):
        events = collect(fmt, {"visualize": False, "pageRanges": "5,1-3"})
        assert [e["event"] for e in events] == ["start", "page", "page", "page", "page", "done"]
        assert events[0]["pagesTotal"] == 4 and [e["pageIndex"] for e in events[1:5]] == [4, 0, 1, 2]
        assert events[-1]["result"]["failedPages"] == [] and events[-1]["errorCode"] == 0
    p, _, _ = parser()
    options = ParseOptions.from_request({"visualize": False, "restructurePages": True})
    doc = asyncio.run(p.parse(text_pdf(5), "pdf", options, "log"))
    events = collect("ndjson", {"visualize": False, "restructurePages": True})
    assert [e["result"] for e in events[1:-1]] == json.loads(json.dumps(document_entries(doc.pages, options)))


def test_stream_deadline_ends_with_an_error_event():
    events = collect("ndjson", {"visualize": False, "deadlineSeconds": 1e-6}, pages=3)
    assert events[0]["event"] == "start" and events[-1]["event"] == "error" and events[-1]["errorCode"] == 504
    assert "POST /jobs/layout-parsing" in events[-1]["errorMsg"]


def test_accept_header_picks_the_stream_format():
    assert stream_format("application/x-ndjson") == "ndjson"
    assert stream_format("text/event-stream; charset=utf-8") == "sse"
    assert stream_format("text/html, application/x-ndjson;q=0.9") == "ndjson"
    assert stream_format("application/json") is None and stream_format(None) is None


def test_pages_finished_while_the_client_lagged_are_all_sent():
    """The client reads the start event, then lets the document finish (the loop turns 500 times,
    no clock) before it reads on: every page still comes, in order (the wait is a safety net)."""
    p, _, _ = parser()
    options = ParseOptions.from_request({"visualize": False})

    async def go():
        doc = await p.open(text_pdf(6), "pdf", options)
        events = page_events(p, doc, options, "log", "ndjson")
        chunks = [await events.__anext__()]
        for _ in range(500):
            await asyncio.sleep(0)
        chunks += await asyncio.wait_for(_rest(events), 60)
        return [json.loads(c) for c in chunks]

    events = asyncio.run(go())
    assert [e["event"] for e in events] == ["start"] + ["page"] * 6 + ["done"]
    assert [e["pageIndex"] for e in events[1:-1]] == list(range(6))


async def _rest(events) -> list:
    return [chunk async for chunk in events]
