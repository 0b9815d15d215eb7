"""``AppConfig``: the whole application's configuration, composed of the stage configs, loadable
from YAML or a dict and validated before anything starts."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Optional, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from deployments.datamodel import ErrorKind
from deployments.layout.config import LayoutConfig
from deployments.gpu_memory import MemoryPlan, MemoryPlanError, plan_card
from deployments.layout.backends import CPU_ONLY
from deployments.layout.detector import choose_backend, gpu_peak_gib
from deployments.pipelines import PIPELINES, PipelineVersion
from deployments.recognizer.config import RecognizerConfig
from deployments.renderer import RendererConfig
from serve_app.errors import UNAVAILABLE, nearest

if TYPE_CHECKING:
    from serve_app.options import OptionDefaults
    from serve_app.pipeline.retries import Retries


class DeploymentSettings(BaseModel):
    """Ray Serve settings of one deployment (defaults suit a batching engine: Serve's default of
    5 ongoing requests would starve it)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    num_replicas: Optional[int] = Field(None, ge=1, description="Fixed replica count (None: autoscale).")
    min_replicas: int = Field(1, ge=0, description="Autoscaling lower bound.")
    max_replicas: int = Field(1, ge=1, description="Autoscaling upper bound.")
    target_ongoing_requests: float = Field(32, gt=0, description="Autoscaling target per replica.")
    max_ongoing_requests: int = Field(64, ge=1, description="Requests one replica works on at once.")
    max_queued_requests: int = Field(512, ge=-1, description="Requests waiting per caller before 429s (-1: no limit).")
    graceful_shutdown_timeout_s: float = Field(60, ge=0, description="Time given to in-flight requests on shutdown.")

    def serve_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {
            "max_ongoing_requests": self.max_ongoing_requests,
            "max_queued_requests": self.max_queued_requests,
            "graceful_shutdown_timeout_s": self.graceful_shutdown_timeout_s,
        }
        if self.num_replicas is not None:
            options["num_replicas"] = self.num_replicas
        else:
            options["autoscaling_config"] = {
                "min_replicas": self.min_replicas, "max_replicas": max(self.min_replicas, self.max_replicas),
                "target_ongoing_requests": self.target_ongoing_requests}
        return options


#: Each deployment's Serve settings unless ``deployments.<name>`` sets them (a batching engine
#: wants far more than Serve's default of 5 ongoing requests).
#: Requests an API replica keeps free beside its documents (in progress and waiting): bodies still
#: arriving (the proxy lets 128 arrive at once, ``serve_app/proxy.py``) and 64 for /health and job polls.
HEALTH_ROOM = 192
#: The API replica takes far more requests than it parses documents (it answers 429 beyond those
#: itself), so /health, job polls and bodies still arriving never queue behind parsing.
DEPLOYMENT_DEFAULTS = {"ingress": DeploymentSettings(max_ongoing_requests=1024, max_replicas=2),
                       "renderer": DeploymentSettings(max_replicas=2, max_ongoing_requests=16),
                       "layout": DeploymentSettings(num_replicas=1, max_ongoing_requests=64),
                       "recognizer": DeploymentSettings(num_replicas=1, max_ongoing_requests=256)}


class IngressConfig(BaseModel):
    """The HTTP API: limits, security, defaults."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_pages: Optional[int] = Field(2000, ge=1, description="Reject documents with more pages than this, on every "
                                     "HTTP path (calls, streams, jobs) (422); None: no limit. Bulk jobs have none.")
    max_body_mb: float = Field(200, gt=0, description="Largest request body (413 beyond).")
    bodies_in_flight_mb: float = Field(1024, gt=0, description="Request bodies one API replica reads and parses at "
                                       "once, all requests together (503 with Retry-After beyond).")
    api_key: Optional[str] = Field(None, description="When set, requests need `Authorization: Bearer "
                                   "<key>` (an empty key is refused: leave the setting out to run without one).")
    visualize: bool = Field(True, description="Default of the `visualize` option (official default: true).")
    timeout_s: float = Field(600, gt=0, description="Default deadline of one request (504 beyond).")
    max_deadline_s: float = Field(3600, gt=0, description="The largest `deadlineSeconds` a blocking or streamed call "
                                  "may ask for (422 beyond: longer documents are for jobs).")
    page_window: int = Field(8, ge=1, description="Render calls of one document in flight at once (4 pages each).")
    max_pixels_in_flight: int = Field(128_000_000, ge=1, description="Rendered pixels one document's pages in flight "
                                      "may hold together (~3 bytes each: 384 MB); a page larger still goes, alone. "
                                      "Normal pages never reach it (32 A4 pages at scale 2 are 64 M).")
    max_concurrent_documents: int = Field(64, ge=1, description="Documents one ingress replica works on at once.")
    max_waiting_documents: int = Field(256, ge=0, description="Documents waiting beyond that before 429s.")
    url_timeout_s: float = Field(30, gt=0, description="Timeout of fetching `file` URLs.")
    url_max_mb: float = Field(200, gt=0, description="Largest download for `file` URLs.")
    allow_private_urls: bool = Field(False, description="Allow URLs on loopback/private addresses (off: SSRF guard).")
    max_output_image_side: int = Field(2000, ge=64, description="Returned images are downscaled to fit this.")
    page_retries: int = Field(3, ge=0, description="Retries of a page step whose replica stopped or was full (pages "
                              "still lost after them make the request a 503 with Retry-After).")
    retry_backoff_s: tuple[float, ...] = Field((0.5, 2.0, 5.0), description="Waits before those retries (the last "
                                               "repeats); never past the request's deadline.")
    retry_on: tuple[ErrorKind, ...] = Field(
        tuple(sorted(UNAVAILABLE)), description="Error kinds of a page step worth those retries (default: a stage "
        "replica that stopped or was full; a page's own failure would only fail again).")
    num_cpus: float = Field(0.25, gt=0, description="CPUs per ingress replica.")

    @model_validator(mode="after")
    def _body_fits_the_budget(self) -> "IngressConfig":
        if self.max_body_mb > self.bodies_in_flight_mb:
            raise ValueError(f"max_body_mb {self.max_body_mb:g} exceeds bodies_in_flight_mb {self.bodies_in_flight_mb:g}: "
                             "a body of the largest size could never be read")
        return self

    @model_validator(mode="after")
    def _default_within_cap(self) -> "IngressConfig":
        if self.timeout_s > self.max_deadline_s:
            raise ValueError(f"timeout_s {self.timeout_s:g} exceeds max_deadline_s {self.max_deadline_s:g}: the default "
                             "deadline must be one a request may ask for")
        return self

    @field_validator("api_key")
    @classmethod
    def _no_empty_key(cls, value: Optional[str]) -> Optional[str]:
        if value is not None and not value.strip():
            raise ValueError("an empty key would turn authentication off; leave api_key out to run without a key, "
                             "or set one")
        return value

    def retries(self) -> "Retries":
        """The retry policy of the application's page steps (blocking, streamed, jobs)."""
        from serve_app.pipeline.retries import Retries

        return Retries(self.page_retries, self.retry_backoff_s, frozenset(self.retry_on))


class JobsConfig(BaseModel):
    """The async job API (``/jobs/layout-parsing``): where jobs are kept, for how long, and limits."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    store: Optional[str] = Field(None, description="Directory or pyarrow filesystem URI (s3://…, gs://…, hdfs://…) "
                                 "for job inputs, page results and records; None: $TMPDIR/paddleocr-vl-serve/jobs/<app "
                                 "name>. Storage every node reaches lets jobs outlive the node of the job manager.")
    ttl_s: float = Field(86400, gt=0, description="Finished jobs (results, inputs) are deleted this long after they end.")
    max_active_per_client: int = Field(16, ge=1, description="Queued + running jobs per client, a client being an API "
                                       "key and an address (429 beyond): one client cannot make everyone wait.")
    max_stored_mb: float = Field(4096, gt=0, description="All jobs' stored bytes (507 beyond: fetch and delete jobs).")
    max_client_share: float = Field(0.25, gt=0, le=1, description="The part of max_stored_mb one client's jobs may "
                                    "hold (429 beyond): one client cannot fill the store for everyone.")
    max_running: int = Field(4, ge=1, description="Jobs parsed at once; the others wait, queued.")
    timeout_s: float = Field(21600, gt=0, description="Default deadline of a job's parsing (`deadlineSeconds` when "
                             "the job does not say; it fails with 504 beyond), counted from each start or resume.")
    max_deadline_s: float = Field(86400, gt=0, description="The largest `deadlineSeconds` a job may ask for (422 beyond).")
    unavailable_retries: int = Field(
        10, ge=0, description="Times a job whose pages were lost with a stage replica (after ingress.page_retries) "
        "is run again, 30 s apart, for the pages not done yet, before it fails with 503.")


class AppConfig(BaseModel):
    """Everything ``build_app`` needs. Example (YAML)::

        renderer: {scale: 2.0}
        layout: {backend: transformers, model: PaddlePaddle/PP-DocLayoutV2_safetensors, device: cuda, num_gpus: 0.1}
        recognizer: {engine: vllm, model: PaddlePaddle/PaddleOCR-VL, num_gpus: 0.85}
        ingress: {max_pages: 2000, api_key: secret}
        deployments:
          recognizer: {num_replicas: 1, max_ongoing_requests: 256}
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field("paddleocr-vl", description="Serve application name.")
    pipeline: PipelineVersion = Field(
        "v1", description="Which PaddleOCR-VL pipeline: v1 (PP-DocLayoutV2 + PaddleOCR-VL-0.9B), v1.5 or v1.6 "
        "(PP-DocLayoutV3 with polygons + PaddleOCR-VL-1.5/1.6-0.9B), each with PaddleX 3.7.2's defaults: the layout "
        "model and its thresholds and merge modes, the recognition model's hub id and chat template. Settings "
        "given under layout/recognizer win over the pipeline's. The GPU configs use v1.6.")
    route_prefix: str = Field("/", description="HTTP route prefix of the application.")
    renderer: RendererConfig = Field(default_factory=RendererConfig)
    layout: LayoutConfig = Field(default_factory=LayoutConfig)
    recognizer: RecognizerConfig = Field(default_factory=RecognizerConfig)
    ingress: IngressConfig = Field(default_factory=IngressConfig)
    jobs: JobsConfig = Field(default_factory=JobsConfig)
    gpu: Optional[str] = Field(
        None, description="The card class the config is for (8gb, 12gb, 16gb, 24gb, 32gb, 80gb, 141gb): the GPU "
        "stages' Ray GPU fractions come from the memory plan for an idle card of that class (deployments/"
        "gpu_memory.py) unless a stage sets num_gpus itself; the engine is still sized on the real card at start.")
    deployments: dict[Literal["ingress", "renderer", "layout", "recognizer"], DeploymentSettings] = Field(
        default_factory=dict, description="Per deployment (ingress, renderer, layout, recognizer): the Serve "
        "settings to change; the others keep their defaults.")

    @model_validator(mode="before")
    @classmethod
    def _pipeline_defaults(cls, data: Any) -> Any:
        """The pipeline's defaults under what the config gives (``pipeline_settings``)."""
        return pipeline_settings(data) if isinstance(data, dict) else data

    @model_validator(mode="after")
    def _room_for_health(self) -> "AppConfig":
        """Checked at load: the API replica takes enough requests that /health never queues behind
        its documents."""
        ingress, room = self.ingress, self.deployment("ingress").max_ongoing_requests
        if room < ingress.max_concurrent_documents + ingress.max_waiting_documents + HEALTH_ROOM:
            raise ValueError(f"deployments.ingress.max_ongoing_requests {room} leaves no room beside "
                             f"{ingress.max_concurrent_documents} documents in progress and {ingress.max_waiting_documents} "
                             f"waiting (ingress.max_concurrent_documents, max_waiting_documents): /health would queue "
                             f"behind parsing; make it at least {HEALTH_ROOM} more than the two together")
        return self

    @model_validator(mode="after")
    def _fits_one_card(self) -> "AppConfig":
        """Checked at load: the card class plans (something fits it), and two GPU stages that set
        their own fractions fit one card together."""
        if self.gpu is not None:
            try:
                self.placement()
            except MemoryPlanError as exc:
                raise ValueError(str(exc)) from None
        layout, recognizer = self.layout_config().num_gpus, self.recognizer_config().num_gpus
        if layout and recognizer and layout + recognizer > 1:
            raise ValueError(f"layout.num_gpus {layout} + recognizer.num_gpus {recognizer} > 1: the two stages of a "
                             "card do not fit on it together; lower one, or set gpu: <card class> to take the "
                             "memory plan's fractions")
        return self

    def placement(self) -> Optional[MemoryPlan]:
        """The memory plan of the card class ``gpu`` (None without one): the GPU stages' Ray fractions."""
        if self.gpu is None:
            return None
        return plan_card(self.gpu, gpu_peak_gib(self.layout, on_gpu=_layout_on_gpu(self.layout)))

    def layout_config(self) -> LayoutConfig:
        """The layout stage's config as its replicas get it: with ``gpu`` set and the model on a
        GPU, its Ray GPU fraction from the memory plan unless ``layout.num_gpus`` is set."""
        plan = self.placement()
        if plan is None or "num_gpus" in self.layout.model_fields_set or not _layout_on_gpu(self.layout):
            return self.layout
        return self.layout.model_copy(update={"num_gpus": plan.layout_num_gpus})

    def recognizer_config(self) -> RecognizerConfig:
        """The recognizer's config as its stage receives it: the layout model's GPU peak filled in
        (``gpu_reserved_gb``) unless set, so the engine's memory plan leaves it room on the card;
        with ``gpu`` set, its Ray GPU fraction from the plan unless ``recognizer.num_gpus`` is set."""
        update: dict[str, Any] = {}
        if self.recognizer.gpu_reserved_gb is None:
            update["gpu_reserved_gb"] = gpu_peak_gib(self.layout_config())
        plan = self.placement()
        if plan is not None and "num_gpus" not in self.recognizer.model_fields_set and self.recognizer.device != "cpu":
            update["num_gpus"] = plan.recognizer_num_gpus
        return self.recognizer.model_copy(update=update) if update else self.recognizer

    def option_defaults(self, path: Literal["call", "job", "bulk"] = "call") -> "OptionDefaults":
        """What a request's options are decided over on ``path``: the stage configs' options;
        ``visualize`` from ``ingress.visualize`` (bulk jobs return no images); ``deadlineSeconds``
        and its cap from ``ingress`` for the blocking and streamed calls, from ``jobs`` for jobs, none
        for bulk (its operator decides)."""
        from serve_app.options import OptionDefaults

        limits = {"call": (self.ingress.timeout_s, self.ingress.max_deadline_s, "ingress.max_deadline_s"),
                  "job": (self.jobs.timeout_s, self.jobs.max_deadline_s, "jobs.max_deadline_s")}.get(path)
        return OptionDefaults(layout=self.layout.options, plan=self.recognizer.plan,
                              visualize=self.ingress.visualize and path != "bulk",
                              deadline_s=limits and limits[0], max_deadline=limits and limits[1:])

    def pipeline_report(self) -> dict[str, str]:
        """Which pipeline runs, in PaddleX's names (``/health``, the start-up log)."""
        spec = PIPELINES[self.pipeline]
        return {"pipeline": spec.name, "pipelineVersion": spec.version, "layoutModel": spec.layout_model,
                "vlmModel": spec.vlm_name, "layoutBackend": choose_backend(self.layout)[0],
                "recognizerEngine": self.recognizer.engine}

    def deployment(self, name: str) -> DeploymentSettings:
        """A deployment's Serve settings: the fields set in ``deployments.<name>`` over the stage's
        defaults (setting one field keeps the others' defaults)."""
        given = self.deployments.get(name)
        default = DEPLOYMENT_DEFAULTS[name]
        return default.model_copy(update={k: getattr(given, k) for k in given.model_fields_set}) if given else default


def pipeline_settings(data: dict) -> dict:
    """``data`` with its pipeline's defaults filled in where it is silent: ``layout.model_name``,
    ``layout.options`` field by field, ``recognizer.pipeline``. A layout model of another pipeline
    is an error (its checkpoint would be refused at start anyway)."""
    version = data.get("pipeline", AppConfig.model_fields["pipeline"].default)
    spec = PIPELINES.get(version)
    if spec is None:
        return data  # the field's own validation names the choices
    layout, recognizer = (_given(data.get(k)) for k in ("layout", "recognizer"))
    if layout.get("model_name", spec.layout_model) != spec.layout_model:
        raise ValueError(f"layout.model_name {layout['model_name']} is not the layout model of pipeline {version} "
                         f"({spec.layout_model}); drop it, or choose the pipeline that uses it")
    options = {**spec.layout_options.model_dump(exclude={"shape_mode"}), **_given(layout.get("options"))}
    return {**data, "layout": {**layout, "model_name": spec.layout_model, "options": options},
            "recognizer": {"pipeline": version, **recognizer}}


def _given(section: Any) -> dict:
    """The settings a config section gives (a stage config object: the fields set in it)."""
    if section is None:
        return {}
    return section.model_dump(exclude_unset=True) if isinstance(section, BaseModel) else dict(section)


def load_config(source: Union[None, str, Path, dict, AppConfig]) -> AppConfig:
    """An ``AppConfig`` from a YAML file (a bare AppConfig or a Serve config file), a dict (e.g.
    Serve ``args``) or None (defaults)."""
    if isinstance(source, AppConfig):
        return source
    if source is None:
        return AppConfig()
    data = config_args(source) if isinstance(source, (str, Path)) else dict(source)
    if "config" in data and len(data) == 1 and isinstance(data["config"], str):  # serve run ... config=FILE
        return load_config(data["config"])
    try:
        return AppConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(config_problems(exc, AppConfig)) from None


class ConfigError(ValueError):
    """A config that cannot start: every problem, an unknown key with the nearest valid one."""


def config_problems(exc: ValidationError, model: type[BaseModel]) -> str:
    """pydantic's errors, an unknown key named with the key it was probably meant to be."""
    lines = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(p) for p in error["loc"])
        if error["type"] == "extra_forbidden":
            known = _fields_at(model, error["loc"][:-1])
            lines.append(f"{where}: unknown setting{nearest(str(error['loc'][-1]), known)}")
        elif not where:  # a check across settings: its message names them
            lines.append(error["msg"].removeprefix("Value error, "))
        else:
            message = error["msg"].removeprefix("Value error, ")
            lines.append(f"{where}: {message}" + (f", got {error['input']!r}" if error["type"] != "missing" else ""))
    return "; ".join(lines)


def _fields_at(model: type[BaseModel], loc: tuple) -> list[str]:
    """The field names of the model at ``loc`` (through nested models and dicts of models)."""
    import typing

    parts = list(loc)
    while parts:
        field = model.model_fields.get(str(parts.pop(0)))
        if field is None:
            return []
        kind = field.annotation
        if typing.get_origin(kind) is dict:
            kind = typing.get_args(kind)[1]
            if parts:
                parts.pop(0)  # the dict's key
        if not (isinstance(kind, type) and issubclass(kind, BaseModel)):
            return []
        model = kind
    return list(model.model_fields)


def _layout_on_gpu(layout: LayoutConfig) -> bool:
    """Whether the layout model runs on a GPU (its device is not cpu and its backend uses one)."""
    return layout.device != "cpu" and choose_backend(layout)[0] not in CPU_ONLY


def config_args(path: Union[str, Path]) -> dict:
    """The AppConfig arguments a YAML file holds: a bare AppConfig, or a Serve config file (its
    first application's ``args``)."""
    data = yaml.safe_load(Path(path).read_text()) or {}
    if "applications" in data:
        return data["applications"][0].get("args") or {}
    return data
