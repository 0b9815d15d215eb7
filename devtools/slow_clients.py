"""Clients that hurt by being slow, over real sockets (loopback only): request bodies that stop
arriving (slowloris), answers never read. Used by the integration tests and
``benchmarks/abuse.py``; :func:`answers` and :func:`read_late` close the sockets they are given."""

from __future__ import annotations

import json
import socket
import time
from urllib.parse import urlparse


def _post_head(parts, path: str, length: int, headers: dict[str, str] | None = None) -> bytes:
    """A JSON POST's request line and headers, as a client writes them."""
    extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    return (f"POST {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: application/json\r\n{extra}"
            f"Content-Length: {length}\r\n\r\n").encode()


def slow_uploads(url: str, count: int, path: str = "/layout-parsing", declared: int = 10_000) -> list[socket.socket]:
    """``count`` connections, each with a POST's headers (``Content-Length: declared``) and the first
    bytes of its body sent, the rest never."""
    parts = urlparse(url)
    sockets = []
    for _ in range(count):
        sock = socket.create_connection((parts.hostname, parts.port), timeout=30)
        sock.sendall(_post_head(parts, path, declared) + b'{"file": "')
        sockets.append(sock)
    return sockets


def answers(sockets: list[socket.socket], timeout: float) -> list[int]:
    """The status each connection got (0: none within ``timeout`` s); closes every socket."""
    statuses = []
    for sock in sockets:
        try:
            sock.settimeout(timeout)
            head = sock.recv(64).split(b" ", 2)
            statuses.append(int(head[1]) if len(head) > 1 and head[1].isdigit() else 0)
        except OSError:
            statuses.append(0)
        finally:
            sock.close()
    return statuses


def unread_request(url: str, path: str, body: dict, headers: dict[str, str] | None = None) -> socket.socket:
    """A POST of ``body`` (JSON) sent whole on a connection that then reads nothing; its receive
    buffer is made as small as the kernel allows, so the server's bytes back up at once."""
    parts = urlparse(url)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(60)
    sock.connect((parts.hostname, parts.port))
    data = json.dumps(body).encode()
    sock.sendall(_post_head(parts, path, len(data), headers) + data)
    return sock


def read_late(sock: socket.socket, after_s: float, timeout: float = 60) -> tuple[int, int, int]:
    """Reads nothing for ``after_s`` seconds (the client under test does not read), then
    everything until the server closes: (status, declared Content-Length, body bytes received)."""
    time.sleep(after_s)
    data, sock_timeout = bytearray(), time.monotonic() + timeout
    try:
        sock.settimeout(timeout)
        while time.monotonic() < sock_timeout and (chunk := sock.recv(1 << 20)):
            data += chunk
    except OSError:
        pass
    finally:
        sock.close()
    head, _, body = bytes(data).partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1]) if lines and len(lines[0].split()) > 1 else 0
    length = next((int(line.split(b":")[1]) for line in lines if line.lower().startswith(b"content-length:")), -1)
    return status, length, len(body)

