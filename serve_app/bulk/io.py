"""Where bulk documents come from: local paths or any filesystem pyarrow reads (s3://, gs://), and
http(s) URLs in manifests. Where their rows go is ``output.py``."""

from __future__ import annotations

import fnmatch
import json
import logging
from pathlib import Path

import pyarrow.fs as pafs
import pyarrow.parquet as pq

log = logging.getLogger("serve_app.bulk")
SUFFIXES = {".pdf", ".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp"}


def filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    """(pyarrow filesystem, path) for a URI (s3://, gs://, ...) or a local path (made absolute)."""
    if "://" in uri:
        return pafs.FileSystem.from_uri(uri)
    return pafs.LocalFileSystem(), str(Path(uri).resolve())


def read_source(source: str) -> bytes:
    if source.startswith(("http://", "https://")):
        import httpx

        response = httpx.get(source, timeout=60, follow_redirects=True)
        response.raise_for_status()
        return response.content
    fs, path = filesystem(source)
    with fs.open_input_stream(path) as stream:
        return stream.read()


def list_inputs(spec: str) -> list[str]:
    """Sources in a stable order, each once: URIs or absolute local paths, or http(s) URLs from
    manifests (a manifest that names a source twice gets it parsed once)."""
    fs, path = filesystem(spec)
    prefix = spec.split("://")[0] + "://" if "://" in spec else ""
    if any(ch in spec for ch in "*?["):
        base = path.split("*")[0].rsplit("/", 1)[0]
        files = fs.get_file_info(pafs.FileSelector(base, recursive=True))
        return sorted(prefix + f.path for f in files if f.is_file and fnmatch.fnmatch(f.path, path))
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.Directory:
        files = fs.get_file_info(pafs.FileSelector(path, recursive=True))
        return sorted(prefix + f.path for f in files if f.is_file and Path(f.path).suffix.lower() in SUFFIXES)
    if info.type != pafs.FileType.File:
        raise SystemExit(f"input {spec!r} does not exist; pass a directory, a glob or a manifest file")
    listed = _manifest(fs, path)
    unique = list(dict.fromkeys(listed))
    if len(unique) < len(listed):
        log.warning("manifest %s names %d sources more than once; each is parsed once", spec, len(listed) - len(unique))
    return unique


def _manifest(fs: pafs.FileSystem, path: str) -> list[str]:
    if path.endswith(".parquet"):
        return [str(p) for p in pq.read_table(path, filesystem=fs, columns=["path"]).column("path").to_pylist()]
    with fs.open_input_stream(path) as stream:
        lines = [line.strip() for line in stream.read().decode().splitlines() if line.strip()]
    if path.endswith(".jsonl"):
        return [json.loads(line)["path"] for line in lines]
    return lines
