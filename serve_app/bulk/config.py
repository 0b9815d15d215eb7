"""``BulkConfig``: one bulk run, from command-line flags (every field is one)."""

from __future__ import annotations

import argparse
import hashlib
import json
import re
from typing import TYPE_CHECKING, Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

from deployments.datamodel import ErrorKind
from serve_app.errors import UNAVAILABLE

if TYPE_CHECKING:
    from serve_app.options import ParseOptions
    from serve_app.pipeline.retries import Retries


class BulkConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input: str = Field(..., description="Directory, glob, manifest (.txt/.jsonl/.parquet) or URI.")
    output: str = Field(..., description="Output directory or URI (Parquet shards, _SUMMARY.json).")
    app: dict[str, Any] = Field(default_factory=dict, description="AppConfig of the stages (renderer, layout, ...).")
    request: dict[str, Any] = Field(
        default_factory=dict, description="Options of every document, named as in the API request (prettifyMarkdown, "
        "useChartRecognition, layoutThreshold, pageRanges, ...); each is also a flag (--prettify-markdown false).")
    serve_url: Optional[str] = Field(None, description="Send documents to a running Serve application instead.")
    render_num_cpus: float = Field(1.0, gt=0, description="CPUs per rendering task.")
    layout_workers: int = Field(1, ge=1, description="Layout actors (resources from the layout config).")
    recognize_workers: int = Field(1, ge=1, description="Recognition actors, each with an engine.")
    recognize_batch: int = Field(32, ge=1, description="Pages per batch of a recognition actor.")
    recognize_batches_in_flight: int = Field(
        2, ge=1, description="Batches one recognition actor reads at once (its engine never drains between them).")
    object_store_gb: float = Field(2.0, gt=0, description="Object store the pipeline may fill (page images in flight).")
    serve_clients: int = Field(4, ge=1, description="With --serve-url: documents sent at once.")
    shard_size: int = Field(32, ge=1, description="Documents per output shard.")
    flush_every_s: float = Field(30.0, gt=0, description="Write a shard at least this often (while documents arrive).")
    page_retries: int = Field(2, ge=0, description="Retries of a page that failed with an error of `retry_on`.")
    retry_backoff_s: list[float] = Field(default_factory=lambda: [1.0, 4.0], description="Waits between retries.")
    retry_on: list[ErrorKind] = Field(
        default_factory=lambda: sorted(UNAVAILABLE | {ErrorKind.RECOGNITION_FAILED, ErrorKind.INTERNAL_ERROR}),
        description="Error kinds of a page worth those retries (a bulk job has time: an engine error is tried "
        "again too).")
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
        """What makes outputs comparable: stage configuration and options (not paths or worker counts)."""
        relevant = {"app": self.app, "serve_url": self.serve_url, **({"request": self.request} if self.request else {})}
        return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]

    def options(self, app) -> "ParseOptions":
        """The documents' options over the stage configs' defaults (``app``: the AppConfig)."""
        from serve_app.options import ParseOptions

        return ParseOptions.from_request(self.request, app.option_defaults("bulk"))

    def retries(self) -> "Retries":
        """The retry policy of a page's recognition in this job."""
        from serve_app.pipeline.retries import Retries

        return Retries(self.page_retries, tuple(self.retry_backoff_s), frozenset(self.retry_on))


#: API options that mean nothing for a bulk job (no images are returned, the type is sniffed).
NOT_BULK = ("file", "fileType", "logId", "visualize", "returnMarkdownImages")


def request_flags() -> dict[str, str]:
    """flag → API option name, for every option of the API request a bulk job can set."""
    from serve_app.protocol import InferRequest

    return {"--" + re.sub(r"(?<!^)(?=[A-Z])", "-", name).lower(): name
            for name in InferRequest.model_fields if name not in NOT_BULK}


def _yaml_value(text: str) -> Any:
    import yaml

    return yaml.safe_load(text)


def parse_args(argv=None, description: str = "") -> BulkConfig:
    from serve_app.launch import add_overrides_flag, apply_overrides

    parser = argparse.ArgumentParser(prog="python -m serve_app.bulk", description=description)
    parser.add_argument("--input", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--config", help="AppConfig YAML for the stages (or a Serve config file)")
    add_overrides_flag(parser)
    parser.add_argument("--serve-url")
    parser.add_argument("--retry-backoff-s", type=float, nargs="+")
    options = parser.add_argument_group("document options (as in the API request; values in YAML: false, 0.3, "
                                        "'{22: 0.35}')")
    flags = request_flags()
    for flag, name in flags.items():
        options.add_argument(flag, dest=f"request:{name}", type=_yaml_value, metavar="VALUE", help=f"API `{name}`")
    for name, field in BulkConfig.model_fields.items():
        if name in ("input", "output", "app", "request", "serve_url", "retry_backoff_s", "retry_on"):
            continue
        flag = "--" + name.replace("_", "-")
        if field.annotation is bool:
            parser.add_argument(flag, action="store_true", help=field.description)
        elif name == "skip_by":
            parser.add_argument(flag, choices=["content", "source"], default=field.default, help=field.description)
        else:
            parser.add_argument(flag, type=type(field.default), default=field.default, help=field.description)
    args = vars(parser.parse_args(argv))
    app = apply_overrides(_app_args(args.pop("config")), args.pop("set"))
    request = {k.split(":", 1)[1]: args.pop(k) for k in list(args) if k.startswith("request:")}
    return BulkConfig(app=app, request={k: v for k, v in request.items() if v is not None},
                      **{k: v for k, v in args.items() if v is not None})


def _app_args(path: Optional[str]) -> dict:
    from serve_app.config import config_args

    return config_args(path) if path else {}
