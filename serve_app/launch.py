"""``python -m serve_app serve [CONFIG]``: start Ray and the application from a Serve config
file, bound to the config's HTTP host (127.0.0.1 in the shipped configs, also for Ray's own node
address), and run until Ctrl-C / SIGTERM. ``serve run CONFIG`` works too; this launcher only adds
the loopback binding and a readiness message."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import yaml


def init_local_ray(loopback: bool = True, **kwargs) -> None:
    """``ray.init`` of a single-node Ray; with ``loopback`` its processes bind 127.0.0.1 only. Ray
    rewrites a loopback node address to the machine's outward IP unless
    ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` (its switch for a loopback node IP), which it reads when
    it is first imported: call this before anything imports ray."""
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    if loopback:
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        kwargs["_node_ip_address"] = "127.0.0.1"
    import ray

    ray.init(include_dashboard=False, **kwargs)


def serve_forever(config_path: str) -> int:
    spec = yaml.safe_load(Path(config_path).read_text())
    http = spec.get("http_options") or {}
    host, port = http.get("host", "127.0.0.1"), int(http.get("port", 8000))
    init_local_ray(loopback=host in ("127.0.0.1", "localhost"))
    import ray
    from ray import serve

    from serve_app.app import build_app

    serve.start(http_options={"host": host, "port": port})
    for application in spec["applications"]:
        serve.run(build_app(application.get("args") or {}), name=application.get("name", "default"),
                  route_prefix=application.get("route_prefix", "/"))
    print(f"ready: http://{host}:{port}  (POST /layout-parsing, docs at /docs); Ctrl-C to stop", flush=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.is_set():
        time.sleep(0.5)
    serve.shutdown()
    ray.shutdown()
    return 0
