"""``file`` URLs: the host is resolved once and the download goes to the address that was checked
(DNS rebinding cannot swap in another), over real HTTP to a server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from serve_app import inputs
from serve_app.config import IngressConfig
from serve_app.inputs import FileError, checked_address, fetch_url, pinned


@pytest.fixture
def server():
    seen = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            seen.append((self.path, self.headers["Host"]))
            self.send_response(200)
            self.send_header("Content-Length", "8")
            self.end_headers()
            self.wfile.write(b"%PDF-1.7")

        def log_message(self, *args):
            pass

    httpd = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address[1], seen
    httpd.shutdown()
    httpd.server_close()


def test_the_download_goes_to_the_address_resolved_once_with_the_host_name_kept(server, monkeypatch):
    port, seen = server
    answers = iter([["127.0.0.1"], ["203.0.113.66"]])  # a rebinding resolver: another address the second time
    calls = []

    async def rebinding(host, timeout_s):
        calls.append(host)
        return next(answers)

    monkeypatch.setattr(inputs, "resolve", rebinding)
    config = IngressConfig(allow_private_urls=True, url_timeout_s=10)  # 127.0.0.1 allowed here; the check is below
    data = asyncio.run(fetch_url(f"http://docs.example:{port}/a/report.pdf?v=2", config))
    # docs.example resolves nowhere: the download reached 127.0.0.1 only because it went to the checked address
    assert data == b"%PDF-1.7" and calls == ["docs.example"]
    assert seen == [("/a/report.pdf?v=2", f"docs.example:{port}")]


def test_every_address_of_the_host_is_checked_and_none_is_echoed(monkeypatch):
    async def mixed(host, timeout_s):
        return ["93.184.216.34", "100.100.100.200"]  # one public, one in the shared range (a cloud metadata address)

    monkeypatch.setattr(inputs, "resolve", mixed)
    with pytest.raises(FileError) as refused:
        asyncio.run(checked_address("docs.example", IngressConfig()))
    assert refused.value.status == 422 and "private or loopback" in refused.value.message
    assert "100.100" not in refused.value.message


def test_tls_keeps_the_host_name_for_the_certificate_and_ipv6_is_bracketed():
    url, headers, extensions = pinned("https://docs.example:8443/x.pdf", "2001:db8::7")
    assert str(url) == "https://[2001:db8::7]:8443/x.pdf"
    assert headers == {"Host": "docs.example:8443"} and extensions == {"sni_hostname": "docs.example"}
    assert pinned("http://docs.example/x.pdf", "93.184.216.34")[2] == {}
    assert asyncio.run(inputs.resolve("::1", 1)) == ["::1"]  # an IP literal is not looked up
