"""A Serve application on 127.0.0.1 for the length of a run: Ray started here (its CPUs: room for
every replica at its minimum count, plus one to scale out), the application deployed, stopped at
the end whatever happens."""

from __future__ import annotations

import math
import os
import time
from typing import Optional

#: What Ray's workers need in this environment (vLLM on loopback, no hub).
WORKER_ENV = {"VLLM_PLUGINS": "", "VLLM_HOST_IP": "127.0.0.1", "HF_HUB_OFFLINE": "1"}


def start_ray(num_cpus: Optional[int] = None, num_gpus: int = 0) -> None:
    """This process's own single-node Ray on 127.0.0.1 (loopback only)."""
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    from serve_app.launch import init_local_ray

    kwargs = {"num_gpus": num_gpus} if num_gpus else {}
    init_local_ray(log_to_driver=False, num_cpus=num_cpus, runtime_env={"env_vars": WORKER_ENV}, **kwargs)


class LocalServe:
    """``with LocalServe(config) as server:`` the application of ``config`` (an AppConfig dict) at
    ``server.url``; ``num_cpus`` (default: what it reserves, plus one) and ``num_gpus`` tell Ray."""

    def __init__(self, config: dict, port: int, num_cpus: Optional[int] = None, num_gpus: int = 0):
        self.config, self.port, self.num_cpus, self.num_gpus = config, port, num_cpus, num_gpus
        self.name = config.get("name", "bench")
        self.url = f"http://127.0.0.1:{port}"

    def __enter__(self) -> "LocalServe":
        from serve_app.app import reserved_cpus
        from serve_app.config import load_config

        start_ray(self.num_cpus or math.ceil(reserved_cpus(load_config(self.config))) + 1, self.num_gpus)
        from ray import serve

        from serve_app.app import build_app

        serve.start(http_options={"host": "127.0.0.1", "port": self.port})
        serve.run(build_app(self.config), name=self.name)
        return self

    def __exit__(self, *exc) -> None:
        import ray
        from ray import serve

        serve.shutdown()
        ray.shutdown()

    def handle(self, deployment: str):
        from ray import serve

        return serve.get_deployment_handle(deployment, app_name=self.name)

    def replica_pids(self, deployment: str) -> list[int]:
        """Process ids of the live replicas of ``deployment`` (a dead one does not answer in 5 s)."""
        import ray

        pids = []
        for actor in ray.util.list_named_actors(all_namespaces=True):
            if not actor["name"].startswith(f"SERVE_REPLICA::{self.name}#{deployment}#"):
                continue
            try:
                handle = ray.get_actor(actor["name"], namespace=actor["namespace"])
                pids.append(ray.get(handle.__ray_call__.remote(lambda replica: os.getpid()), timeout=5))
            except Exception:  # noqa: BLE001 - dead or not started yet
                continue
        return pids

    def wait_ready(self, since: float, timeout: float) -> Optional[float]:
        """Seconds from ``since`` until ``/health/ready`` answers 200 (None: not within ``timeout``)."""
        import httpx

        while time.monotonic() - since < timeout:
            try:
                if httpx.get(f"{self.url}/health/ready", timeout=15).status_code == 200:
                    return round(time.monotonic() - since, 2)
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        return None


from devtools.ray_cluster import LocalCluster, free_port  # noqa: E402  (a cluster of nodes on 127.0.0.1; a free port)

__all__ = ["LocalCluster", "LocalServe", "free_port", "start_ray", "WORKER_ENV"]
