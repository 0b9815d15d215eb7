"""Serve under faults: clients keep documents in flight while one replica of each stage (renderer,
layout, recognizer, ingress) is SIGKILLed by pid, one at a time, on 127.0.0.1 with the simulated
engines (so the run tests the pipeline, not this CPU's speed).

Every request must either succeed with every page OK (pages lost with a replica are retried on a
live or restarted one) or get a clear 503/504 with ``Retry-After``; none may hang (no answer within
the client's timeout, which is longer than the request's own deadline). Per stage it reports when
``/health/ready`` was green again and when the killed replica's successor answered.

    .venv/bin/python benchmarks/chaos.py [--profile rtx5090] [--clients 16] [--requests-per-phase 24]

Writes benchmarks/results/chaos.json (``chaos_<clients>.json`` for other than 16 clients;
``lost_requests``, ``hung_requests``, per-stage recovery);
figures are "simulated <profile>". Bounded: a fixed number of requests per phase, loopback only.
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import os
import signal
import sys
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "benchmarks")]

from devtools.documents import text_pdf  # noqa: E402

APP = "chaos"
STAGES = ("renderer", "layout", "recognizer", "ingress")


def app_config(profile: str, ingress_replicas: int = 1) -> dict:
    """gpu_regime's simulated stages (``visualize`` off), with ``ingress_replicas`` API replicas."""
    import gpu_regime

    return {**gpu_regime.app_config(profile), "name": APP,
            "deployments": {"ingress": {"num_replicas": ingress_replicas}}}


def replica_pids(deployment: str, app: str = APP) -> list[int]:
    """Process ids of the live replicas of ``deployment`` (a dead one does not answer in 5 s)."""
    import ray

    pids = []
    for actor in ray.util.list_named_actors(all_namespaces=True):
        if not actor["name"].startswith(f"SERVE_REPLICA::{app}#{deployment}#"):
            continue
        try:
            handle = ray.get_actor(actor["name"], namespace=actor["namespace"])
            pids.append(ray.get(handle.__ray_call__.remote(lambda replica: os.getpid()), timeout=5))
        except Exception:  # noqa: BLE001 - dead or not started yet
            continue
    return pids


class Load:
    """``clients`` threads, each sending documents (1-4 pages) back to back until told to stop or
    ``limit`` requests were sent; every answer is classified."""

    def __init__(self, url: str, clients: int, deadline_s: float, client_timeout_s: float, limit: int):
        self.url, self.clients, self.deadline_s, self.timeout_s, self.limit = url, clients, deadline_s, client_timeout_s, limit
        self.outcomes: list[dict] = []
        self.sent = 0
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.docs = [base64.b64encode(text_pdf(1 + n % 4, f"Chaos document {n}, page {{n}}.")).decode() for n in range(8)]
        self.threads = [threading.Thread(target=self._client, args=(i,), daemon=True) for i in range(clients)]

    def start(self) -> "Load":
        for t in self.threads:
            t.start()
        return self

    def done(self) -> int:
        with self.lock:
            return len(self.outcomes)

    def stop(self) -> None:
        self.stopping.set()
        for t in self.threads:
            t.join(self.timeout_s + 30)

    def _client(self, index: int) -> None:
        import httpx

        with httpx.Client(base_url=self.url, timeout=self.timeout_s) as client:
            while not self.stopping.is_set():
                with self.lock:
                    if self.sent >= self.limit:
                        return
                    self.sent += 1
                    n = self.sent
                pages = 1 + n % 4
                body = {"file": self.docs[n % len(self.docs)], "fileType": 0, "deadlineSeconds": self.deadline_s}
                start = time.monotonic()
                outcome = {"sent_at": start, "pages": pages}
                try:
                    response = client.post("/layout-parsing", json=body)
                    outcome.update(self._judge(response, pages))
                except httpx.TimeoutException:
                    outcome["kind"] = "hung"
                except httpx.HTTPError as exc:
                    outcome["kind"], outcome["detail"] = "connection_error", f"{type(exc).__name__}: {exc}"[:300]
                outcome["seconds"] = time.monotonic() - start
                with self.lock:
                    self.outcomes.append(outcome)

    @staticmethod
    def _judge(response, pages: int) -> dict:
        try:
            body = response.json()
        except ValueError:
            return {"kind": f"http_{response.status_code}_not_json", "detail": response.text[:300]}
        if response.status_code == 200:
            entries = body["result"]["layoutParsingResults"]
            failed = [e for e in entries if e["status"] != "ok"]
            if len(entries) == pages and not failed:
                return {"kind": "ok"}
            return {"kind": "ok_with_failed_pages", "detail": json.dumps([e.get("error") for e in failed])[:300]}
        clear = response.status_code in (503, 504) and "retry-after" in response.headers
        return {"kind": f"http_{response.status_code}" + ("_retry_after" if clear else ""),
                "detail": str(body.get("errorMsg"))[:300]}


def wait_ready(url: str, since: float, timeout: float) -> float | None:
    """Seconds from ``since`` until ``/health/ready`` answers 200 (None: not within ``timeout``)."""
    import httpx

    while time.monotonic() - since < timeout:
        try:
            if httpx.get(f"{url}/health/ready", timeout=15).status_code == 200:
                return round(time.monotonic() - since, 2)
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    return None


def wait_replaced(stage: str, killed: int, replicas: int, since: float, timeout: float) -> float | None:
    while time.monotonic() - since < timeout:
        pids = replica_pids(stage)
        if len(pids) >= replicas and killed not in pids:
            return round(time.monotonic() - since, 2)
        time.sleep(0.25)
    return None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="rtx5090")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests-per-phase", type=int, default=24,
                        help="Requests answered between one kill and the next (and before the first)")
    parser.add_argument("--ingress-replicas", type=int, default=2)
    parser.add_argument("--deadline-s", type=float, default=120, help="deadlineSeconds of every request")
    parser.add_argument("--port", type=int, default=8097)
    args = parser.parse_args(argv)
    client_timeout = args.deadline_s + 60  # an answer later than this is a hang

    from serve_app.app import build_app, reserved_cpus
    from serve_app.config import load_config
    from serve_app.launch import init_local_ray

    config = app_config(args.profile, args.ingress_replicas)
    init_local_ray(log_to_driver=False, num_cpus=math.ceil(reserved_cpus(load_config(config))) + 1)
    from ray import serve

    serve.start(http_options={"host": "127.0.0.1", "port": args.port})
    serve.run(build_app(config), name=APP)
    url = f"http://127.0.0.1:{args.port}"
    label = f"simulated {args.profile}"
    replicas = {"ingress": args.ingress_replicas}
    phases = len(STAGES) + 1
    load = Load(url, args.clients, args.deadline_s, client_timeout, args.requests_per_phase * phases).start()
    kills = []
    try:
        for n, stage in enumerate(STAGES, start=1):
            while load.done() < n * args.requests_per_phase and not load.stopping.is_set():
                time.sleep(0.1)
            pid = replica_pids(stage)[0]
            at = time.monotonic()
            in_flight = load.sent - load.done()
            os.kill(pid, signal.SIGKILL)
            ready = wait_ready(url, at, 300)
            replaced = wait_replaced(stage, pid, replicas.get(stage, 1), at, 300)
            kills.append({"stage": stage, "pid": pid, "requests_in_flight": in_flight, "ready_after_s": ready,
                          "replaced_after_s": replaced, "at": at})
            print(f"  killed {stage} (pid {pid}) with {in_flight} requests in flight: ready again after {ready} s, "
                  f"replaced after {replaced} s", flush=True)
        while load.done() < load.limit and any(t.is_alive() for t in load.threads):
            time.sleep(0.2)
    finally:
        load.stop()
        serve.shutdown()
        import ray

        ray.shutdown()

    outcomes = load.outcomes
    kinds = Counter(o["kind"] for o in outcomes)
    clear = {k for k in kinds if k == "ok" or k.endswith("_retry_after")}
    lost = [o for o in outcomes if o["kind"] not in clear and o["kind"] != "hung"]
    for kill in kills:  # the answers of the requests in flight when this replica was killed
        spanning = [o for o in outcomes if o["sent_at"] <= kill["at"] <= o["sent_at"] + o["seconds"]]
        kill["answers_of_requests_in_flight"] = dict(Counter(o["kind"] for o in spanning))
        kill["error_messages"] = dict(Counter(o["detail"][:160] for o in spanning if o["kind"] != "ok"))
        kill.pop("at")
    report = {"label": label, "profile": args.profile, "clients": args.clients,
              "ingress_replicas": args.ingress_replicas, "deadline_s": args.deadline_s,
              "client_timeout_s": client_timeout, "requests_sent": len(outcomes), "by_kind": dict(kinds),
              "succeeded": kinds.get("ok", 0), "clear_errors": sum(v for k, v in kinds.items() if k in clear - {"ok"}),
              "lost_requests": len(lost), "hung_requests": kinds.get("hung", 0),
              "lost_examples": [{"kind": o["kind"], "detail": o.get("detail", "")} for o in lost[:5]],
              "kills": kills, "machine_cpus": len(os.sched_getaffinity(0))}
    print(f"\n{label}, {args.clients} clients, {len(outcomes)} requests: {dict(kinds)}")
    print(f"{'stage killed':<14}{'in flight':>10}{'ready after s':>15}{'replaced after s':>18}  answers of the requests in flight")
    for kill in kills:
        print(f"{kill['stage']:<14}{kill['requests_in_flight']:>10}{str(kill['ready_after_s']):>15}"
              f"{str(kill['replaced_after_s']):>18}  {kill['answers_of_requests_in_flight']}")
    print(f"lost requests {report['lost_requests']}, hung requests {report['hung_requests']}")
    out = ROOT / "benchmarks" / "results" / ("chaos.json" if args.clients == 16 else f"chaos_{args.clients}.json")
    out.write_text(json.dumps(report, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
