"""The ``file`` field: Base64 or an http(s) URL (fetched with a timeout, a size cap and a refusal
of private/loopback addresses unless allowed), and its type (PDF or image).

A URL's host is resolved once: the addresses are checked, and the connection goes to the checked
address (the URL's name kept for ``Host`` and TLS), so a name that resolves to a public address for
the check and to a private one for the download (DNS rebinding) reaches only the public one."""

from __future__ import annotations

import asyncio
import base64
import binascii
import ipaddress
import mimetypes
import socket
from typing import Literal, Optional
from urllib.parse import urlparse

import httpx

from deployments.renderer import sniff_kind
from serve_app.config import IngressConfig
from serve_app.errors import ServiceError

Kind = Literal["pdf", "image"]


class FileError(ServiceError):
    """The ``file`` cannot be obtained (422, or 413 when it is too large)."""


def is_url(value: str) -> bool:
    return value.startswith(("http://", "https://"))


def decode_base64(value: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise FileError(422, "`file` is neither an http(s) URL nor valid Base64; send the document's bytes "
                        "Base64-encoded (standard alphabet, padded) or a URL") from None


async def resolve(host: str, timeout_s: float) -> list[str]:
    """The host's addresses (an IP literal is its own)."""
    try:
        return [str(ipaddress.ip_address(host))]
    except ValueError:
        pass
    try:
        infos = await asyncio.wait_for(asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM),
                                       timeout_s)
    except (socket.gaierror, asyncio.TimeoutError):
        raise FileError(422, f"cannot resolve the host of the `file` URL ({host})") from None
    return [info[4][0] for info in infos]


async def checked_address(host: str, config: IngressConfig) -> str:
    """The address to connect to: the host resolved once, every address checked (unless
    ``allow_private_urls``)."""
    addresses = await resolve(host, config.url_timeout_s)
    if not config.allow_private_urls:
        for text in addresses:
            address = ipaddress.ip_address(text.split("%")[0])
            # Anything not globally routable: private, loopback, link-local, shared (100.64.0.0/10, where
            # clouds put metadata services), 6to4 relays, reserved. The address is not echoed.
            if not address.is_global or _six_to_four(address):
                raise FileError(422, "the `file` URL points to a private or loopback address; this server refuses "
                                "those (set ingress.allow_private_urls to allow them)")
    return addresses[0]


def pinned(url: str, address: str) -> tuple[httpx.URL, dict[str, str], dict[str, str]]:
    """(URL, headers, httpx extensions) of a GET of ``url`` sent to ``address``: the URL's host
    name stays in ``Host`` and is the name TLS checks the certificate against (SNI)."""
    target = httpx.URL(url)
    extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
    return target.copy_with(host=address), {"Host": target.netloc.decode("ascii")}, extensions


def _six_to_four(address) -> bool:
    """2002::/16 wraps an IPv4 address (6to4): Python counts it global whatever it wraps."""
    return address.version == 6 and address in ipaddress.ip_network("2002::/16")


async def fetch_url(url: str, config: IngressConfig) -> bytes:
    """Download with a timeout and a size cap; errors name the URL problem."""
    host = urlparse(url).hostname or ""
    target, headers, extensions = pinned(url, await checked_address(host, config))
    limit = int(config.url_max_mb * 2**20)
    try:
        async with httpx.AsyncClient(timeout=config.url_timeout_s, follow_redirects=False) as client:
            async with client.stream("GET", target, headers=headers, extensions=extensions) as response:
                if response.status_code != 200:
                    raise FileError(422, f"fetching the `file` URL returned HTTP {response.status_code}")
                chunks, size = [], 0
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > limit:
                        raise FileError(413, f"the `file` URL's content exceeds {config.url_max_mb:g} MB "
                                        "(ingress.url_max_mb)")
                    chunks.append(chunk)
                return b"".join(chunks)
    except httpx.TimeoutException:
        raise FileError(422, f"fetching the `file` URL timed out after {config.url_timeout_s:g} s") from None
    except httpx.HTTPError as exc:
        raise FileError(422, f"the `file` URL could not be fetched ({type(exc).__name__}: {exc})") from None


def url_kind(url: str) -> Optional[Kind]:
    """PaddleX infers the type of a URL from its path's extension."""
    mime, _ = mimetypes.guess_type(urlparse(url).path.rsplit("/", 1)[-1])
    if mime == "application/pdf":
        return "pdf"
    if mime and mime.startswith("image/"):
        return "image"
    return None


async def load_file(file: str, file_type: Optional[int], config: IngressConfig) -> tuple[bytes, Kind]:
    """(bytes, kind). The kind comes from ``fileType``, else the URL's extension, else the bytes
    (PaddleX answers 422 for Base64 without ``fileType``; we look at the bytes instead)."""
    if is_url(file):
        try:
            urlparse(file).hostname  # noqa: B018 - parsing is the check ("http://[::1/x" raises)
        except ValueError as exc:
            raise FileError(422, f"the `file` URL cannot be parsed ({exc}); send a valid http(s) URL or Base64") from None
        data = await fetch_url(file, config)
        guessed = url_kind(file)
    else:
        data = decode_base64(file)
        guessed = None
    if file_type is not None:
        return data, "pdf" if file_type == 0 else "image"
    return data, guessed or sniff_kind(data)
