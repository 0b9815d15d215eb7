"""A real two-node Ray cluster on 127.0.0.1 for the test session: a head (`ray start --head`) and a
second node (`ray start --address`) with its own resources, each a `ray start --block` process
that this module starts and stops by pid (SIGTERM makes it stop the Ray processes it started).

Loopback only: `ray start` rewrites a 127.0.0.1 node address to the machine's outward IP, so the
two CLI processes run with that one rewrite turned off, and every Ray process they start gets
``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` (Ray's own switch for a loopback node IP; it only refuses
`ray start --address` itself, which the CLI wrapper allows)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from serve_app.launch import PROXY_CALLBACK, SERVE_PROXY_PATIENCE  # the proxy's answer for a lost API replica

RAY_START = ("import sys, ray._private.services as services, ray._private.ray_constants as constants; "
             "constants.ENABLE_RAY_CLUSTER = True; services.resolve_ip_for_localhost = lambda host: host; "
             "from ray.scripts.scripts import main; sys.argv[0] = 'ray'; main()")
ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0",
       "HF_HUB_OFFLINE": "1", "VLLM_PLUGINS": "", "VLLM_HOST_IP": "127.0.0.1", "TRANSFORMERS_VERBOSITY": "error",
       "RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH": PROXY_CALLBACK, **SERVE_PROXY_PATIENCE,
       # A stalled request body is cut off after 10 s and an unread answer after 5 s, not the shipped
       # 30 s and 60 s (serve_app/proxy.py), so the slow-client tests end sooner; test clients send
       # and read at once, never seconds apart.
       "PADDLEOCR_VL_BODY_IDLE_S": "10", "PADDLEOCR_VL_SEND_IDLE_S": "5"}


def free_port(avoid=()) -> int:
    """A free loopback port, none of ``avoid`` (ports chosen but not bound yet: the kernel may hand
    a just-released port out again, and Ray refuses two components on one port)."""
    import socket

    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port not in avoid:
            return port


class LocalCluster:
    def __init__(self, gcs_port: int | None = None, dashboard_port: int | None = None):
        # The cluster's own temp dir (its logs and sessions), removed by stop(); short: Ray's socket
        # paths have a length limit.
        self.temp_dir = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))
        self.gcs_port = gcs_port or free_port()
        self.dashboard_port = dashboard_port or free_port(avoid={self.gcs_port})
        self.address = f"127.0.0.1:{self.gcs_port}"
        self.dashboard = f"http://127.0.0.1:{self.dashboard_port}"
        self.procs: list[subprocess.Popen] = []

    def start(self, head_cpus: int = 16, node_cpus: int = 4, node_gpus: int = 0, node_resources: dict | None = None,
              object_store_mb: int = 1500, timeout: float = 180) -> "LocalCluster":
        common = ["--node-ip-address=127.0.0.1", "--block", "--disable-usage-stats",
                  f"--object-store-memory={object_store_mb * 2**20}"]
        self._spawn("head", ["--head", f"--port={self.gcs_port}", f"--num-cpus={head_cpus}", "--num-gpus=0",
                             "--include-dashboard=true", "--dashboard-host=127.0.0.1",
                             f"--dashboard-port={self.dashboard_port}", f"--temp-dir={self.temp_dir}", *common])
        self.wait_for_nodes(1, timeout)
        self._spawn("node", [f"--address={self.address}", f"--num-cpus={node_cpus}", f"--num-gpus={node_gpus}",
                             f"--resources={json.dumps(node_resources or {'second_node': 1})}", *common])
        self.wait_for_nodes(2, timeout)
        return self

    def add_node(self, name: str, cpus: int, resources: dict, object_store_mb: int = 500,
                 timeout: float = 180) -> subprocess.Popen:
        """One more node (``name`` for its log), joined once the cluster counts it alive."""
        alive = len(self.nodes())
        self._spawn(name, [f"--address={self.address}", "--node-ip-address=127.0.0.1", "--block",
                           "--disable-usage-stats", f"--num-cpus={cpus}", "--num-gpus=0",
                           f"--resources={json.dumps(resources)}", f"--object-store-memory={object_store_mb * 2**20}"])
        self.wait_for_nodes(alive + 1, timeout)
        return self.procs[-1]

    def kill_node(self, node: subprocess.Popen) -> None:
        """The node lost as a machine is lost: SIGKILL to its `ray start` process and every process
        under it (raylet, workers), by pid, with no chance to say goodbye."""
        import psutil

        for proc in psutil.Process(node.pid).children(recursive=True):
            try:
                proc.kill()
            except psutil.Error:
                pass
        node.kill()
        node.wait()
        self.procs.remove(node)

    def _spawn(self, name: str, args: list[str]) -> None:
        # each node's dashboard agent on a port of its own: Ray's default (52365) is taken by the first
        # node of any cluster on this machine, and a head without its agent refuses every Jobs API call
        args = [*args, f"--dashboard-agent-listen-port={free_port(avoid={self.gcs_port, self.dashboard_port})}"]
        log = open(self.temp_dir / f"ray-{name}.log", "wb")
        # TMPDIR: what the cluster's processes leave in the temp dir (the dashboard's multiprocessing
        # folders, vLLM's file stores, drivers' files) goes with the cluster's own folder at stop()
        self.procs.append(subprocess.Popen([sys.executable, "-c", RAY_START, "start", *args], stdout=log,
                                           stderr=subprocess.STDOUT,
                                           env={**os.environ, **ENV, "TMPDIR": str(self.temp_dir)}))

    def nodes(self) -> list[dict]:
        import httpx

        try:
            reply = httpx.get(f"{self.dashboard}/api/v0/nodes", timeout=10).json()
        except (httpx.HTTPError, ValueError):
            return []
        return [n for n in reply["data"]["result"]["result"] if n["state"] == "ALIVE"]

    def wait_for_nodes(self, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.nodes()) >= count:
                return
            if any(p.poll() is not None for p in self.procs):
                break
            time.sleep(1)
        logs = "\n".join((self.temp_dir / f"ray-{n}.log").read_text(errors="replace")[-2000:]
                         for n in ("head", "node") if (self.temp_dir / f"ray-{n}.log").exists())
        self.stop()
        raise RuntimeError(f"the Ray cluster did not reach {count} live nodes in {timeout:.0f} s:\n{logs}")

    def stop(self) -> None:
        """Stop both nodes (by their pids) and delete the cluster's temp dir."""
        for proc in reversed(self.procs):  # the second node first, then the head
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        self.procs.clear()
        self._remove_temp_dir()

    def _remove_temp_dir(self, tries: int = 60) -> None:
        """The cluster's temp dir, once no process of the cluster writes to it any more: Ray's
        processes outlive their `ray start` parent by a moment, and one that writes meanwhile would
        leave a folder behind (a bounded wait, by count)."""
        import psutil

        for _ in range(tries):
            shutil.rmtree(self.temp_dir, ignore_errors=True)
            writers = []
            for proc in psutil.process_iter(["cmdline"]):
                try:
                    if str(self.temp_dir) in " ".join(proc.info["cmdline"] or []):
                        writers.append(proc)
                except psutil.Error:
                    continue
            if not writers and not self.temp_dir.exists():
                return
            psutil.wait_procs(writers, timeout=1)
