"""``BulkConfig``: one bulk run, from command-line flags (every field is one)."""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field


class BulkConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input: str = Field(..., description="Directory, glob, manifest (.txt/.jsonl/.parquet) or URI.")
    output: str = Field(..., description="Output directory or URI (Parquet shards, _SUMMARY.json).")
    app: dict[str, Any] = Field(default_factory=dict, description="AppConfig of the stages (renderer, layout, ...).")
    serve_url: Optional[str] = Field(None, description="Send documents to a running Serve application instead.")
    render_num_cpus: float = Field(1.0, gt=0, description="CPUs per rendering task.")
    layout_workers: int = Field(1, ge=1, description="Layout actors (resources from the layout config).")
    recognize_workers: int = Field(1, ge=1, description="Recognition actors, each with an engine.")
    recognize_batch: int = Field(32, ge=1, description="Pages one recognition actor reads at once.")
    object_store_gb: float = Field(2.0, gt=0, description="Object store the pipeline may fill (page images in flight).")
    serve_clients: int = Field(4, ge=1, description="With --serve-url: documents sent at once.")
    shard_size: int = Field(32, ge=1, description="Documents per output shard.")
    flush_every_s: float = Field(30.0, gt=0, description="Write a shard at least this often (while documents arrive).")
    page_retries: int = Field(2, ge=0, description="Retries of a page that failed with a transient error.")
    retry_backoff_s: list[float] = Field(default_factory=lambda: [1.0, 4.0], description="Waits between retries.")
    max_page_error_rate: float = Field(0.5, ge=0, le=1, description="A document with more failed pages fails.")
    max_doc_error_rate: float = Field(0.25, ge=0, le=1, description="The job fails above this rate of failed docs.")
    abort_after: int = Field(50, ge=1, description="Stop early after this many documents if that rate is exceeded.")
    progress_every_s: float = Field(10.0, gt=0, description="Summary line interval.")
    markdown_files: bool = Field(False, description="Also write markdown/<doc_id>.md files.")
    jsonl: bool = Field(False, description="Also write each shard as JSONL.")
    skip_by: Literal["content", "source"] = Field(
        "content", description="Skip done documents by content hash (re-reads them) or by source path only.")
    retry_failed: bool = Field(False, description="Parse documents that failed in an earlier run again.")

    def fingerprint(self) -> str:
        """What makes outputs comparable: the stage configuration (not paths or worker counts)."""
        relevant = json.dumps({"app": self.app, "serve_url": self.serve_url}, sort_keys=True)
        return hashlib.sha256(relevant.encode()).hexdigest()[:16]


def parse_args(argv=None, description: str = "") -> BulkConfig:
    parser = argparse.ArgumentParser(prog="python -m serve_app.bulk", description=description)
    parser.add_argument("--input", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--config", help="AppConfig YAML for the stages (or a Serve config file)")
    parser.add_argument("--serve-url")
    parser.add_argument("--retry-backoff-s", type=float, nargs="+")
    for name, field in BulkConfig.model_fields.items():
        if name in ("input", "output", "app", "serve_url", "retry_backoff_s"):
            continue
        flag = "--" + name.replace("_", "-")
        if field.annotation is bool:
            parser.add_argument(flag, action="store_true", help=field.description)
        elif name == "skip_by":
            parser.add_argument(flag, choices=["content", "source"], default=field.default, help=field.description)
        else:
            parser.add_argument(flag, type=type(field.default), default=field.default, help=field.description)
    args = vars(parser.parse_args(argv))
    app = _app_args(args.pop("config"))
    return BulkConfig(app=app, **{k: v for k, v in args.items() if v is not None})


def _app_args(path: Optional[str]) -> dict:
    if not path:
        return {}
    import yaml

    data = yaml.safe_load(Path(path).read_text()) or {}
    if "applications" in data:  # a Serve config file: take the application's args
        return data["applications"][0].get("args") or {}
    return data
