"""Hostile requests against a server with the shipped limits (the offline CPU default,
``configs/cpu.yaml``, on 127.0.0.1): each small request crafted to stall a stage, fill memory or
leak must get its clear answer quickly, ``/health`` must keep answering while they run, and a normal
1-page document must parse right after. Bounded: one request per case, loopback only.

    .venv/bin/python -m benchmarks.abuse

Writes benchmarks/results/abuse.json: ``cases`` (name, expected and got status, seconds, passed),
``passed``, ``worst_health_s`` (the slowest ``/health`` answer while the cases ran). Two cases are
slow clients over raw sockets and take the shipped bounds' time (30 s, 90 s). What loopback from one
address cannot show is listed under ``tested_elsewhere`` with the test that shows it.
"""

from __future__ import annotations

import base64
import io
import threading
import time
from pathlib import Path

import httpx
import yaml

from benchmarks.harness import results
from benchmarks.harness.server import LocalServe, free_port
from devtools.documents import long_text_page, table_page, text_pdf, xobject_bomb_pdf
from devtools.slow_clients import answers, read_late, slow_uploads, unread_request
from serve_app.proxy import ProxyLimits

ROOT = Path(__file__).resolve().parents[1]
TESTED_ELSEWHERE = {
    "DNS rebinding: the download goes to the checked address": "tests/unit/serve_app/test_inputs.py",
    "job limits per client without a key (needs two client addresses)": "tests/unit/serve_app/test_job_manager.py",
    "bodies arriving at once per proxy (needs 129 client addresses)": "tests/unit/serve_app/test_proxy.py",
    "a document's pixels in flight": "tests/unit/serve_app/test_pipeline.py",
    "a job's default deadline": "tests/unit/serve_app/test_job_manager.py"}


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _bomb_png() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("1", (9990, 9990), 1).save(buffer, "PNG")
    return buffer.getvalue()


def _chunked_body(megabytes: int):
    yield b'{"file": "'
    for _ in range(megabytes):
        yield b"A" * 2**20
    yield b'"}'


def cases(page: bytes) -> list[tuple[str, int, dict]]:
    """(name, expected status, httpx request keywords)."""
    post = lambda body, path="/layout-parsing": {"method": "POST", "url": path, "json": body}  # noqa: E731
    raw = lambda text: {"method": "POST", "url": "/layout-parsing", "content": text,  # noqa: E731
                        "headers": {"content-type": "application/json"}}
    return [
        ("pageRanges: '1-4000' x 1000", 422, post({"file": _b64(page), "pageRanges": ",".join(["1-4000"] * 1000)})),
        ("pageRanges: '1-1' x 100 (allowed, cheap)", 200, post({"file": _b64(page), "pageRanges": ",".join(["1-1"] * 100),
                                                                 "visualize": False})),
        ("a 300 KB invalid option value", 422, post({"file": _b64(page),
                                                     "layoutThreshold": {str(i): "y" * 3000 for i in range(100)}})),
        ("logId with a newline", 422, post({"file": _b64(page), "logId": "a\nb"})),
        ("logId not Latin-1", 422, post({"file": _b64(page), "logId": "журнал"})),
        ("logId of 10,000 characters", 422, post({"file": _b64(page), "logId": "x" * 10_000})),
        ("deadlineSeconds: Infinity", 422, raw('{"file": "%s", "deadlineSeconds": Infinity}' % _b64(page))),
        ("deadlineSeconds: 86400 on a call (cap 3600)", 422, post({"file": _b64(page), "deadlineSeconds": 86400})),
        ("PDF of 2001 pages (max_pages 2000)", 422, post({"file": _b64(text_pdf(2001, "p")), "visualize": False})),
        ("chunked body of 210 MB (limit 200)", 413, {"method": "POST", "url": "/layout-parsing",
                                                     "content": _chunked_body(210),
                                                     "headers": {"content-type": "application/json"}}),
        ("restructure: colspan 100000", 422, post({"pages": [table_page('colspan="100000"')] * 2}, "/restructure-pages")),
        ("restructure: colspan 'abc'", 422, post({"pages": [table_page('colspan="abc"')] * 2}, "/restructure-pages")),
        ("restructure: bad model_settings type", 422, post({"pages": [table_page("", {"markdown_ignore_labels": 5})]},
                                                           "/restructure-pages")),
        ("job with an unparsable URL", 422, post({"file": "http://[::1/x.pdf"}, "/jobs/layout-parsing")),
        ("NUL byte in a /ui path", 404, {"method": "GET", "url": "/ui/a%00b.js"}),
        ("URL to 100.100.100.200 (cloud metadata)", 422, post({"file": "http://100.100.100.200/latest/meta-data"})),
        ("URL to 6to4 of 169.254.169.254", 422, post({"file": "http://[2002:a9fe:a9fe::1]/x.pdf"})),
        ("1-bit PNG of 9990 x 9990 (a few KB)", 422, post({"file": _b64(_bomb_png()), "fileType": 1})),
        ("PDF of Form XObjects 8 deep x 10 (10^8 drawings; page 2 plain)", 200,
         post({"file": _b64(xobject_bomb_pdf(depth=8, pages=2)), "visualize": False})),
    ]


def slow_client_cases(url: str) -> list[dict]:
    """Slowloris from one address, and a large answer never read, against the shipped bounds."""
    limits, out = ProxyLimits(), []
    held = limits.max_uploads_per_client
    start = time.perf_counter()
    statuses = answers(slow_uploads(url, held + 2), timeout=4 * limits.body_idle_s)
    got = {s: statuses.count(s) for s in sorted(set(statuses))}
    out.append({"name": f"{held + 2} bodies that stop arriving, one address", "expected": {408: held, 503: 2},
                "got": got, "seconds": round(time.perf_counter() - start, 3), "passed": got == {408: held, 503: 2}})
    start = time.perf_counter()
    sock = unread_request(url, "/restructure-pages", {"pages": [long_text_page()] * 600})
    status, declared, received = read_late(sock, after_s=1.5 * limits.send_idle_s)
    out.append({"name": f"a {declared / 2**20:.0f} MB answer never read", "expected": "cut off",
                "got": f"{status}, {received / 2**20:.1f} MB of {declared / 2**20:.1f} MB sent",
                "seconds": round(time.perf_counter() - start, 3), "passed": status == 200 and received < declared / 2})
    for case in out:
        print(f"  {'ok ' if case['passed'] else 'BAD'} {case['name']:<44} {case['got']} {case['seconds']:>7.3f} s")
    return out


class HealthProbe(threading.Thread):
    """``/health`` every 0.2 s while the cases run; the slowest answer (or the timeout) is kept."""

    def __init__(self, url: str):
        super().__init__(daemon=True)
        self.url, self.worst, self.stop = url, 0.0, threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as client:
            while not self.stop.is_set():
                start = time.perf_counter()
                try:
                    client.get("/health").raise_for_status()
                    self.worst = max(self.worst, time.perf_counter() - start)
                except httpx.HTTPError:
                    self.worst = max(self.worst, 30.0)
                self.stop.wait(0.2)


def main() -> None:
    config = yaml.safe_load((ROOT / "configs" / "cpu.yaml").read_text())["applications"][0]["args"]
    page = text_pdf(1, "A normal page after the attacks: words to read. " * 20)
    report = {"cases": []}
    with LocalServe({**config, "name": "abuse"}, free_port()) as server:
        with httpx.Client(base_url=server.url, timeout=300) as client:
            client.post("/layout-parsing", json={"file": _b64(page), "visualize": False})  # warm-up
            probe = HealthProbe(server.url)
            probe.start()
            for name, expected, request in cases(page):
                start = time.perf_counter()
                status = client.request(**request).status_code
                seconds = round(time.perf_counter() - start, 3)
                report["cases"].append({"name": name, "expected": expected, "got": status, "seconds": seconds,
                                        "passed": status == expected})
                print(f"  {'ok ' if status == expected else 'BAD'} {name:<44} {status} ({expected}) {seconds:>7.3f} s")
            report["cases"] += slow_client_cases(server.url)
            probe.stop.set()
            probe.join()
            after = client.post("/layout-parsing", json={"file": _b64(page), "visualize": False})
            normal = after.status_code == 200 and after.json()["errorCode"] == 0
    report.update(passed=sum(c["passed"] for c in report["cases"]), total=len(report["cases"]),
                  worst_health_s=round(probe.worst, 3), normal_page_after=normal, tested_elsewhere=TESTED_ELSEWHERE)
    print(f"{report['passed']}/{report['total']} cases as expected; worst /health {report['worst_health_s']} s; "
          f"a normal page after: {'ok' if normal else 'FAILED'}")
    results.write("abuse", report, "cpu (offline default, configs/cpu.yaml limits)")


if __name__ == "__main__":
    main()
