"""``python -m serve_app serve [CONFIG]``: start a single-node Ray and the applications of a Serve
config file, and run until Ctrl-C / SIGTERM. ``serve run CONFIG`` works too; this launcher adds:

- Ray's own processes bind 127.0.0.1 (a single node needs no outward address), whatever HTTP host
  the proxy binds (``--host 0.0.0.0`` inside a container, where Docker publishes the port);
- ``--set recognizer.model=/models/PaddleOCR-VL`` overrides of the applications' arguments (dotted
  paths into the AppConfig; values in YAML), so an image runs the shipped configs with mounted
  weights;
- Ray's CPU count raised to what the config reserves (a 1-CPU container still places the CPU
  default: the reservations are placement tokens, the stages size their threads to the real CPUs);
- Ray's object store sized to fit ``/dev/shm`` (Ray otherwise falls back to a disk-backed store
  when a container's shared memory is smaller than its default: 30 % of the memory).

Every option also reads an environment variable (``PADDLEOCR_VL_CONFIG``, ``_HOST``, ``_PORT``,
``_SET`` (space-separated KEY=VALUE), ``_NUM_CPUS``), which is how the container images take them.
"""

from __future__ import annotations

import copy
import math
import os
import shutil
import signal
import sys
import threading
import time
from pathlib import Path

import yaml

SHM = "/dev/shm"
MIN_SHM = 1024**3
PROXY_CALLBACK = "serve_app.proxy:middlewares"  # Serve's proxy answers for a lost API replica


def init_local_ray(loopback: bool = True, **kwargs) -> None:
    """``ray.init`` of a single-node Ray; with ``loopback`` its processes bind 127.0.0.1 only. Ray
    rewrites a loopback node address to the machine's outward IP unless
    ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` (its switch for a loopback node IP), which it reads when
    it is first imported: call this before anything imports ray."""
    ray_environment(loopback)
    if loopback:
        kwargs["_node_ip_address"] = "127.0.0.1"
    import ray

    ray.init(include_dashboard=False, **kwargs)


#: Serve kills an HTTP proxy that is not ready within 5 s, and ``serve.start`` then fails with the
#: proxy "killed by ray.kill" on a busy small machine, where importing the proxy takes longer; a
#: proxy that is slow to start is not a broken one. (Environment of the processes that start Ray.)
SERVE_PROXY_PATIENCE = {"RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S": "60", "RAY_SERVE_PROXY_HEALTH_CHECK_TIMEOUT_S": "60"}


def ray_environment(loopback: bool = True) -> None:
    """The environment Ray reads when it is first imported (see ``init_local_ray``)."""
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH", PROXY_CALLBACK)  # serve_app/proxy.py
    for name, value in SERVE_PROXY_PATIENCE.items():
        os.environ.setdefault(name, value)
    if loopback:
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")


def add_overrides_flag(parser) -> None:
    """``--set KEY=VALUE`` (repeatable), defaulting to ``$PADDLEOCR_VL_SET`` (space-separated): the
    overrides of ``serve`` and of bulk jobs, so an image's settings reach both."""
    parser.add_argument("--set", action="append", metavar="KEY=VALUE",
                        default=os.environ.get("PADDLEOCR_VL_SET", "").split(),
                        help="override a stage setting of the config, e.g. recognizer.model=/models/PaddleOCR-VL "
                        "(repeatable; $PADDLEOCR_VL_SET: space-separated)")


def apply_overrides(args: dict, overrides: list[str]) -> dict:
    """``KEY=VALUE`` pairs (dotted keys into an application's arguments, values parsed as YAML)
    applied to a copy of ``args``. Whether a key exists is AppConfig's to say (it rejects unknown
    keys, naming them)."""
    out = copy.deepcopy(args or {})
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise SystemExit(f"error: override {item!r} is not KEY=VALUE; e.g. --set recognizer.model=/models/PaddleOCR-VL")
        *parents, leaf = key.strip().split(".")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise SystemExit(f"error: override {item!r}: {part!r} is a value, not a section")
        node[leaf] = yaml.safe_load(value)
    return out


def ray_cpus(configs: list) -> int:
    """The CPUs Ray is told: those of the machine (cgroup quota and affinity included), but at
    least what the applications (``AppConfig``) reserve at their minimum replica counts."""
    from deployments.resources import machine_cpus
    from serve_app.app import reserved_cpus

    return max(machine_cpus(), math.ceil(sum(reserved_cpus(c) for c in configs)))


def object_store_bytes() -> int | None:
    """An object store that fits ``/dev/shm`` when that is smaller than Ray's default (30 % of the
    memory Ray sees) but big enough for pages in flight (1 GiB); ``None`` (Ray's default) otherwise.
    Below 1 GiB (Docker's default is 64 MiB), Ray keeps its default size in a disk-backed store and
    warns, naming ``--shm-size``: slower, but never too small for the pipeline."""
    try:
        shm = shutil.disk_usage(SHM).total
    except OSError:
        return None
    from ray._common.utils import get_system_memory  # what Ray's default is computed from

    if shm < MIN_SHM or shm >= 0.3 * get_system_memory():
        return None
    return int(shm * 0.8)


def serve_forever(config_path: str, host: str | None = None, port: int | None = None,
                  overrides: list[str] = (), num_cpus: float | None = None) -> int:
    ray_environment()  # before the config's validation imports the application (and Ray)
    from serve_app.config import ConfigError, load_config

    spec = yaml.safe_load(Path(config_path).read_text())
    configs = []  # validated before Ray starts
    for application in spec["applications"]:
        try:
            configs.append(load_config(apply_overrides(application.get("args") or {}, list(overrides))))
        except ConfigError as exc:
            print(f"error: {config_path}, application {application.get('name', 'default')!r}"
                  f"{' with ' + ' '.join(overrides) if overrides else ''}: {exc}", file=sys.stderr)
            return 2
    http = spec.get("http_options") or {}
    host, port = host or http.get("host", "127.0.0.1"), int(port or http.get("port", 8000))
    init_local_ray(num_cpus=num_cpus or ray_cpus(configs), object_store_memory=object_store_bytes())
    import ray
    from ray import serve

    from serve_app.app import build_app

    serve.start(http_options={"host": host, "port": port})
    for application, config in zip(spec["applications"], configs):
        serve.run(build_app(config), name=application.get("name", "default"),
                  route_prefix=application.get("route_prefix", "/"))
    print(f"ready: http://{host}:{port}  (POST /layout-parsing, docs at /docs, web page at /ui); "
          "Ctrl-C to stop", flush=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.is_set():
        time.sleep(0.5)
    serve.shutdown()
    ray.shutdown()
    return 0
