"""Pages of ``POST /layout-parsing`` streamed as they finish, when the request's ``Accept`` asks for
``application/x-ndjson`` (one JSON object per line) or ``text/event-stream`` (Server-Sent Events).

Events, in this order (each NDJSON line carries its name in ``event``; SSE uses ``event:``):

- ``start``: ``{logId, pagesTotal, dataInfo}`` once the document is opened;
- ``page``: ``{logId, pageIndex, pagesDone, result}`` per page in page order, ``result`` being the page's
  ``layoutParsingResults`` item, sent as soon as it and every page before it are done (with
  ``restructurePages``, which needs the whole document, all pages come at the end); ``pagesDone``
  counts the document's pages finished by then, in any order;
- ``done``: ``{logId, errorCode: 0, errorMsg, result: {dataInfo, pagesTotal, failedPages}}``; or
  ``error``: ``{logId, errorCode, errorMsg}`` when the document cannot finish (the deadline).

Errors found before the first event (authentication, options, the file) are answered as the usual
JSON envelope with their status code.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any, AsyncIterator, Optional

from serve_app.parser import DocumentParser, OpenedDocument, data_info
from serve_app.options import ParseOptions
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


async def page_events(parser: DocumentParser, doc: OpenedDocument, options: ParseOptions, log_id: str,
                      fmt: str, timeout: float) -> AsyncIterator[bytes]:
    """The events of one document. Closing the iterator (the client went away) cancels the pages
    still in flight, so the stages and the engine stop their work."""
    loop = asyncio.get_running_loop()
    finished: asyncio.Queue[PageOutput] = asyncio.Queue()
    deadline = time.monotonic() + timeout
    work = loop.create_task(asyncio.wait_for(parser.run(doc, options, log_id, deadline, finished.put), timeout))
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
        yield encode(fmt, "done", {"logId": log_id, "errorCode": 0, "errorMsg": "Success",
                                   "result": {"dataInfo": info, "pagesTotal": len(order), "failedPages": failed}})
    except asyncio.TimeoutError:
        yield encode(fmt, "error", {"logId": log_id, "errorCode": 504, "errorMsg": (
            f"the document was not parsed within {timeout:g} s ({len(done)} of {len(order)} pages done); raise "
            "deadlineSeconds (or ingress.timeout_s), send fewer pages, or use POST /jobs/layout-parsing")})
    except Exception as exc:  # noqa: BLE001 - the stream ends with an error event, never a cut connection
        log.exception("[%s] stream failed", log_id)
        yield encode(fmt, "error", {"logId": log_id, "errorCode": 500,
                                    "errorMsg": f"Internal server error ({type(exc).__name__})"})
    finally:
        if not work.done():
            work.cancel()
            await asyncio.gather(work, return_exceptions=True)
