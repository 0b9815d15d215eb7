"""Python client of the HTTP API, and the ``parse`` command behind ``python -m serve_app parse``.

    from serve_app.client import Client
    client = Client("http://127.0.0.1:8000")
    result = client.parse("paper.pdf")                 # the API's `result` object, one blocking call
    job = client.submit("book.pdf")                     # an async job: its id
    client.status(job)["pagesDone"]; result = client.wait(job)
    for event in client.stream("book.pdf"): ...         # start, page…, done as pages finish
"""

from __future__ import annotations

import base64
import json
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Union

import httpx

from serve_app.errors import ServiceError

PDF_SUFFIXES = {".pdf"}


#: What the client raises for an error answer: the server's own ServiceError, read back from the
#: envelope (status, message, Retry-After). ``ApiError``: its name in earlier versions.
ApiError = ServiceError


class Client:
    def __init__(self, url: str = "http://127.0.0.1:8000", api_key: Optional[str] = None, timeout: float = 3600):
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.http = httpx.Client(base_url=url.rstrip("/"), timeout=timeout, headers=headers)

    def parse(self, path: str | Path, **options: Any) -> dict:
        """POST a local file to /layout-parsing; returns ``result`` or raises :class:`ServiceError`."""
        path = Path(path)
        return self.parse_bytes(path.read_bytes(), path.name, **options)

    def parse_bytes(self, data: bytes, name: str = "", **options: Any) -> dict:
        """POST document bytes (the type comes from ``name``'s suffix, else from the bytes)."""
        return self._call("POST", "/layout-parsing", json=self._body(data, name, options))["result"]

    # -- async jobs --------------------------------------------------------------------------
    def submit(self, document: Union[str, Path, bytes], name: str = "", **options: Any) -> str:
        """Hand a document over as a job (``POST /jobs/layout-parsing``); returns its id."""
        data, name = _read(document, name)
        return self._call("POST", "/jobs/layout-parsing", json=self._body(data, name, options))["result"]["jobId"]

    def status(self, job_id: str) -> dict:
        """``{status, pagesDone, pagesTotal, failedPages, elapsedSeconds, etaSeconds, …}``."""
        return self._call("GET", f"/jobs/{job_id}")["result"]

    def result(self, job_id: str) -> dict:
        """The finished job's ``result`` (what ``parse`` returns); ServiceError 409 while it runs."""
        return self._call("GET", f"/jobs/{job_id}/result")["result"]

    def cancel(self, job_id: str) -> dict:
        """Cancel a queued or running job; delete a finished one."""
        return self._call("DELETE", f"/jobs/{job_id}")["result"]

    def wait(self, job_id: str, on_status: Optional[Callable[[dict], None]] = None, poll_s: float = 1.0) -> dict:
        """Poll until the job ends; its ``result``, or ServiceError with the job's own error."""
        while True:
            status = self.status(job_id)
            if on_status is not None:
                on_status(status)
            if status["status"] not in ("queued", "running"):
                return self.result(job_id)
            time.sleep(poll_s)

    # -- streamed pages -----------------------------------------------------------------------
    def stream(self, document: Union[str, Path, bytes], name: str = "", **options: Any) -> Iterator[dict]:
        """``POST /layout-parsing`` with ``Accept: application/x-ndjson``: yields the ``start``
        event, each ``page`` event in page order as soon as it is done, then ``done``; an ``error``
        event (the deadline, a lost page) raises ServiceError."""
        data, name = _read(document, name)
        with self.http.stream("POST", "/layout-parsing", json=self._body(data, name, options),
                              headers={"Accept": "application/x-ndjson"}) as response:
            if response.status_code != 200:
                response.read()
                _check(response)
            for line in response.iter_lines():
                if not line:
                    continue
                event = json.loads(line)
                if event["event"] == "error":
                    raise ServiceError(event["errorCode"], event["errorMsg"])
                yield event

    # -- plumbing ------------------------------------------------------------------------------
    @staticmethod
    def _body(data: bytes, name: str, options: dict) -> dict:
        body = {"file": base64.b64encode(data).decode(), "visualize": False, **options}
        if name:
            body.setdefault("fileType", 0 if Path(name).suffix.lower() in PDF_SUFFIXES else 1)
        return body

    def _call(self, method: str, url: str, **kwargs) -> dict:
        return _check(self.http.request(method, url, **kwargs))


def _read(document: Union[str, Path, bytes], name: str) -> tuple[bytes, str]:
    if isinstance(document, bytes):
        return document, name
    return Path(document).read_bytes(), name or Path(document).name


def _check(response: httpx.Response) -> dict:
    retry_after = response.headers.get("retry-after")
    retry_after = int(retry_after) if retry_after and retry_after.isdigit() else None
    try:
        envelope = response.json()
    except ValueError:
        raise ServiceError(response.status_code, response.text[:200], retry_after) from None
    if envelope.get("errorCode", response.status_code) != 0:
        raise ServiceError(response.status_code, envelope.get("errorMsg", ""), retry_after)
    return envelope


def page_count(path: Path) -> int:
    """Pages of a local PDF (1 for an image or an unreadable file: the server says what is wrong)."""
    if path.suffix.lower() not in PDF_SUFFIXES:
        return 1
    try:
        import pymupdf

        with pymupdf.open(path) as doc:
            return doc.page_count
    except Exception:  # noqa: BLE001 - the server reports the real problem
        return 1


def parse_as_job(client: Client, path: Path, options: dict, on_status: Optional[Callable[[dict], None]] = None) -> dict:
    """Submit ``path`` as a job, or pick up the job a previous run left in ``<file>.job.json``
    (the command was stopped: the server kept working), and wait for its result."""
    state = path.with_name(path.name + ".job.json")
    job_id = None
    if state.exists():
        job_id = json.loads(state.read_text()).get("jobId")
        try:
            client.status(job_id)
        except ServiceError as exc:
            if exc.status != 404:
                raise
            job_id = None  # expired or deleted: submit again
    if job_id is None:
        job_id = client.submit(path, **options)
        state.write_text(json.dumps({"jobId": job_id, "url": str(client.http.base_url)}))
    result = client.wait(job_id, on_status)
    state.unlink(missing_ok=True)
    return result


def save_outputs(path: Path, result: dict) -> tuple[Path, Path]:
    """Write ``<file>.md`` (all pages) and ``<file>.json`` (the whole result) next to the input,
    and Markdown images under ``<file>_imgs/``."""
    pages = result["layoutParsingResults"]
    markdown = "\n\n".join(p["markdown"]["text"] for p in pages)
    images_dir = path.with_name(path.stem + "_imgs")
    for page in pages:
        for rel, data in (page["markdown"].get("images") or {}).items():
            target = images_dir / Path(rel).name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(base64.b64decode(data))
            markdown = markdown.replace(rel, f"{images_dir.name}/{target.name}")
    md_path, json_path = path.with_suffix(".md"), path.with_suffix(".json")
    md_path.write_text(markdown)
    json_path.write_text(json.dumps(result, ensure_ascii=False, indent=1))
    return md_path, json_path


def parse_files(files: list[str], url: str, api_key: Optional[str], workers: int, options: dict,
                jobs_over: int = 20) -> int:
    """Parse files concurrently with a progress bar per document and one for all; documents of
    more than ``jobs_over`` pages go through the job API (per-page progress, resumable). Returns
    the number of failures."""
    from tqdm import tqdm

    client, failures = Client(url, api_key), 0

    def one(path: Path, slot: int) -> dict:
        pages = page_count(path)
        if pages <= jobs_over:
            return client.parse(path, **options)
        with tqdm(total=pages, unit="page", desc=path.name, position=slot + 1, leave=False) as bar:
            def progress(status: dict) -> None:
                bar.total = status["pagesTotal"] or bar.total
                bar.update(status["pagesDone"] - bar.n)
            return parse_as_job(client, path, options, progress)

    with ThreadPoolExecutor(workers) as pool, tqdm(total=len(files), unit="doc", position=0) as bar:
        futures = {pool.submit(one, Path(f), i % workers): Path(f) for i, f in enumerate(files)}
        for future in as_completed(futures):
            path = futures[future]
            try:
                result = future.result()
                md, _ = save_outputs(path, result)
                failed = sum(p.get("status") == "failed" for p in result["layoutParsingResults"])
                bar.write(f"{path}: {len(result['layoutParsingResults'])} pages → {md}"
                          + (f" ({failed} pages failed)" if failed else ""))
            except (ServiceError, httpx.HTTPError, OSError) as exc:
                failures += 1
                bar.write(f"{path}: FAILED: {exc}")
            bar.update(1)
    return failures


def stream_files(files: list[str], url: str, api_key: Optional[str], options: dict, out=None) -> int:
    """``--stream``: one document after another, each page's Markdown printed as it arrives, then
    the outputs saved as ``parse`` saves them. Returns the number of failures."""
    import sys

    out = out or sys.stdout
    client, failures = Client(url, api_key), 0
    for name in files:
        path, entries = Path(name), []
        try:
            for event in client.stream(path, **options):
                if event["event"] == "start":
                    print(f"==> {path}: {event['pagesTotal']} pages", file=out, flush=True)
                elif event["event"] == "page":
                    entries.append(event["result"])
                    print(f"--- page {event['pageIndex'] + 1} ---\n{event['result']['markdown']['text']}", file=out,
                          flush=True)
                else:
                    md, _ = save_outputs(path, {"layoutParsingResults": entries, "dataInfo": event["result"]["dataInfo"]})
                    print(f"==> {path}: {len(entries)} pages → {md}", file=out, flush=True)
        except (ServiceError, httpx.HTTPError, OSError) as exc:
            failures += 1
            print(f"{path}: FAILED: {exc}", file=out, flush=True)
    return failures
