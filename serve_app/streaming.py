"""Pages of ``POST /layout-parsing`` streamed as they finish, when the request's ``Accept`` asks for
``application/x-ndjson`` (one JSON object per line) or ``text/event-stream`` (Server-Sent Events).

Events, in this order (each NDJSON line carries its name in ``event``; SSE uses ``event:``):

- ``start``: ``{logId, pagesTotal, dataInfo}`` once the document is opened;
- ``page``: ``{logId, pageIndex, pagesDone, result}`` per page in page order, ``result`` being the page's
  ``layoutParsingResults`` item, sent as soon as it and every page before it are done (with
  ``restructurePages``, which needs the whole document, all pages come at the end); ``pagesDone``
  counts the document's pages finished by then, in any order;
- ``done``: ``{logId, errorCode: 0, errorMsg, result: {dataInfo, pagesTotal, failedPages}}``; or
  ``error``: the envelope ``{logId, errorCode, errorMsg}`` when the document cannot finish: 504 past
  its deadline, 503 when a page was lost with a stage replica (the pages after it are not sent;
  the whole document again, later, gets them all).

Errors found before the first event (authentication, options, the file) are answered as the usual
JSON envelope with their status code.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, AsyncIterator, Optional

from serve_app.errors import service_error
from serve_app.protocol import envelope_body
from serve_app.options import ParseOptions
from serve_app.pipeline import DocumentPipeline, OpenedDocument, data_info
from serve_app.respond import PageOutput, document_entries, finished_page_entry

log = logging.getLogger("serve_app")
MEDIA_TYPES = {"application/x-ndjson": "ndjson", "text/event-stream": "sse"}


def stream_format(accept: Optional[str]) -> Optional[str]:
    """``ndjson`` or ``sse`` when the Accept header asks for one of them (first match wins)."""
    for part in (accept or "").split(","):
        kind = MEDIA_TYPES.get(part.split(";")[0].strip().lower())
        if kind:
            return kind
    return None


def media_type(fmt: str) -> str:
    return next(media for media, kind in MEDIA_TYPES.items() if kind == fmt)


def encode(fmt: str, event: str, payload: dict[str, Any]) -> bytes:
    if fmt == "ndjson":
        return (json.dumps({"event": event, **payload}, ensure_ascii=False) + "\n").encode()
    return f"event: {event}\ndata: {json.dumps(payload, ensure_ascii=False)}\n\n".encode()


async def page_events(pipeline: DocumentPipeline, doc: OpenedDocument, options: ParseOptions, log_id: str,
                      fmt: str) -> AsyncIterator[bytes]:
    """The events of one document. Closing the iterator (the client went away) cancels the pages
    still in flight, so the stages and the engine stop their work."""
    loop = asyncio.get_running_loop()
    finished: asyncio.Queue[PageOutput] = asyncio.Queue()
    work = loop.create_task(pipeline.run(doc, options, log_id, finished.put))
    info = data_info(doc)
    yield encode(fmt, "start", {"logId": log_id, "pagesTotal": len(doc.page_indices), "dataInfo": info})
    order, done, sent = doc.page_indices, {}, 0
    try:
        while len(done) < len(order):
            if not finished.empty():  # pages finished while the client was being written to
                out = finished.get_nowait()
            elif work.done():
                await work  # raises what stopped the document
                raise RuntimeError(f"the document ended with {len(order) - len(done)} pages unreported")
            else:
                getter = loop.create_task(finished.get())
                await asyncio.wait({getter, work}, return_when=asyncio.FIRST_COMPLETED)
                if not getter.done():
                    getter.cancel()
                    continue
                out = getter.result()
            done[out.result.page_index] = out
            while not options.restructure.enabled and sent < len(order) and order[sent] in done:
                page = done[order[sent]]
                yield encode(fmt, "page", {"logId": log_id, "pageIndex": order[sent], "pagesDone": len(done),
                                           "result": finished_page_entry(page, options)})
                sent += 1
        await work
        if options.restructure.enabled:
            for index, entry in zip(order, document_entries([done[i] for i in order], options)):
                yield encode(fmt, "page", {"logId": log_id, "pageIndex": index, "pagesDone": len(done), "result": entry})
        failed = [i for i in order if not done[i].result.ok]
        yield encode(fmt, "done", envelope_body(log_id, result={"dataInfo": info, "pagesTotal": len(order),
                                                               "failedPages": failed}))
    except Exception as exc:  # noqa: BLE001 - the stream ends with an error event, never a cut connection
        error = service_error(exc)
        if error.status == 500:
            log.exception("[%s] stream failed", log_id)
        yield encode(fmt, "error", envelope_body(log_id, error.status, error.message))
    finally:
        if not work.done():
            work.cancel()
            await asyncio.gather(work, return_exceptions=True)
