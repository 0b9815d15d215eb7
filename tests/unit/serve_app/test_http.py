"""The success answer: the same bytes as the envelope, one body when small, streamed in pieces
when large; a job's stored result answered the same way."""

from __future__ import annotations

import asyncio
import json

from fastapi.responses import StreamingResponse

from serve_app.http import answer, envelope, stored_answer


def result(pages: int) -> dict:
    return {"layoutParsingResults": [{"prunedResult": {"page_index": i, "text": "Größe ½ — 表格"},
                                      "markdown": {"text": f"# Page {i}\n", "images": {"a.jpg": "x" * 1000}},
                                      "status": "ok"} for i in range(pages)],
            "dataInfo": {"numPages": pages, "pages": [{"width": 595, "height": 842}] * pages, "type": "pdf"}}


def body_of(response) -> bytes:
    if not isinstance(response, StreamingResponse):
        return response.body

    async def collect():
        return [chunk async for chunk in response.body_iterator]

    chunks = asyncio.run(collect())
    assert len(chunks) > 1 and all(len(c) >= 4096 for c in chunks[:-1])
    return b"".join(chunks)


def test_a_small_answer_is_one_body_equal_to_the_envelope():
    response = answer("log-1", result(3))
    assert not isinstance(response, StreamingResponse)
    assert response.body == envelope("log-1", result=result(3)).body
    assert response.headers["content-length"] == str(len(response.body))
    assert response.media_type == "application/json"


def test_a_large_answer_is_streamed_in_pieces_with_the_same_bytes():
    response = answer("log-2", result(40), chunk_bytes=4096)
    assert isinstance(response, StreamingResponse) and response.media_type == "application/json"
    assert body_of(response) == envelope("log-2", result=result(40)).body


def test_no_pages_and_an_answer_of_exactly_one_piece():
    assert answer("log-3", result(0)).body == envelope("log-3", result=result(0)).body
    whole = envelope("log-4", result=result(2)).body
    assert answer("log-4", result(2), chunk_bytes=len(whole)).body == whole


def test_a_stored_result_is_answered_with_the_envelopes_bytes_in_its_pieces():
    """``GET /jobs/{id}/result``: the job store's JSON of ``result`` (as ``JobFiles.write_json``
    writes it) read back in pieces, behind the envelope's head."""
    stored = json.dumps(result(40), ensure_ascii=False, separators=(",", ":")).encode()
    head = {"logId": "log-5", "errorCode": 0, "errorMsg": "Success"}

    async def pieces(size):
        for start in range(0, len(stored), size):
            yield stored[start : start + size]

    async def sent(size):  # the answer made and sent on one event loop, as in the ingress
        response = await stored_answer(dict(head), pieces(size))
        if not isinstance(response, StreamingResponse):
            return [response.body]
        return [chunk async for chunk in response.body_iterator]

    expected = envelope("log-5", result=result(40)).body
    assert asyncio.run(sent(len(stored))) == [expected]  # one piece: one body
    chunks = asyncio.run(sent(4096))
    assert len(chunks) > 2 and b"".join(chunks) == expected
