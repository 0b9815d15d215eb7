"""Python client of the HTTP API, and the ``parse`` command behind ``python -m serve_app parse``.

    from serve_app.client import Client
    result = Client("http://127.0.0.1:8000").parse("paper.pdf")   # the API's `result` object
"""

from __future__ import annotations

import base64
import json
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any, Optional

import httpx

PDF_SUFFIXES = {".pdf"}


class ApiError(RuntimeError):
    """The server answered with an error envelope."""

    def __init__(self, status: int, message: str):
        super().__init__(f"HTTP {status}: {message}")
        self.status, self.message = status, message


class Client:
    def __init__(self, url: str = "http://127.0.0.1:8000", api_key: Optional[str] = None, timeout: float = 3600):
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.http = httpx.Client(base_url=url.rstrip("/"), timeout=timeout, headers=headers)

    def parse(self, path: str | Path, **options: Any) -> dict:
        """POST a local file to /layout-parsing; returns ``result`` or raises :class:`ApiError`."""
        path = Path(path)
        return self.parse_bytes(path.read_bytes(), path.name, **options)

    def parse_bytes(self, data: bytes, name: str = "", **options: Any) -> dict:
        """POST document bytes (the type comes from ``name``'s suffix, else from the bytes)."""
        body = {"file": base64.b64encode(data).decode(), "visualize": False, **options}
        if name:
            body.setdefault("fileType", 0 if Path(name).suffix.lower() in PDF_SUFFIXES else 1)
        response = self.http.post("/layout-parsing", json=body)
        try:
            envelope = response.json()
        except ValueError:
            raise ApiError(response.status_code, response.text[:200]) from None
        if envelope.get("errorCode", response.status_code) != 0:
            raise ApiError(response.status_code, envelope.get("errorMsg", ""))
        return envelope["result"]


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


def parse_files(files: list[str], url: str, api_key: Optional[str], workers: int, options: dict) -> int:
    """Parse files concurrently with a progress bar; returns the number of failures."""
    from tqdm import tqdm

    client, failures = Client(url, api_key), 0
    with ThreadPoolExecutor(workers) as pool, tqdm(total=len(files), unit="doc") as bar:
        futures = {pool.submit(client.parse, f, **options): Path(f) for f in files}
        for future in as_completed(futures):
            path = futures[future]
            try:
                result = future.result()
                md, _ = save_outputs(path, result)
                failed = sum(p.get("status") == "failed" for p in result["layoutParsingResults"])
                bar.write(f"{path}: {len(result['layoutParsingResults'])} pages → {md}"
                          + (f" ({failed} pages failed)" if failed else ""))
            except (ApiError, httpx.HTTPError, OSError) as exc:
                failures += 1
                bar.write(f"{path}: FAILED: {exc}")
            bar.update(1)
    return failures
