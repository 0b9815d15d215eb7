"""Serve under faults: clients keep documents in flight while one replica of each stage (renderer,
layout, recognizer, ingress) is SIGKILLed by pid, one at a time, on 127.0.0.1 with the simulated
engines (so the run tests the pipeline, not this CPU's speed).

Every request must either succeed with every page OK (pages lost with a replica are retried on a
live or restarted one) or get a clear 503/504 with ``Retry-After``; none may hang (no answer within
the client's timeout, which is longer than the request's own deadline). Per stage it reports when
``/health/ready`` was green again and when the killed replica's successor answered.

    .venv/bin/python -m benchmarks.chaos [--profile rtx5090] [--clients 16] [--requests-per-phase 24]

Writes benchmarks/results/chaos.json (``chaos_<clients>.json`` for other than 16 clients;
``lost_requests``, ``hung_requests``, per-stage recovery);
figures are "simulated <profile>". Bounded: a fixed number of requests per phase, loopback only.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from collections import Counter

from benchmarks.harness import results
from benchmarks.harness.apps import app_config, label
from benchmarks.harness.load import Load
from benchmarks.harness.server import LocalServe

APP = "chaos"
STAGES = ("renderer", "layout", "recognizer", "ingress")


def wait_replaced(server: LocalServe, stage: str, killed: int, replicas: int, since: float,
                  timeout: float) -> float | None:
    while time.monotonic() - since < timeout:
        pids = server.replica_pids(stage)
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

    config = app_config("simulated", profile=args.profile, ingress_replicas=args.ingress_replicas, name=APP)
    replicas = {"ingress": args.ingress_replicas}
    phases = len(STAGES) + 1
    kills = []
    with LocalServe(config, args.port) as server:
        load = Load(server.url, args.clients, args.deadline_s, client_timeout, args.requests_per_phase * phases).start()
        try:
            for n, stage in enumerate(STAGES, start=1):
                while load.done() < n * args.requests_per_phase and not load.stopping.is_set():
                    time.sleep(0.1)
                pid = server.replica_pids(stage)[0]
                at = time.monotonic()
                in_flight = load.sent - load.done()
                os.kill(pid, signal.SIGKILL)
                ready = server.wait_ready(at, 300)
                replaced = wait_replaced(server, stage, pid, replicas.get(stage, 1), at, 300)
                kills.append({"stage": stage, "pid": pid, "requests_in_flight": in_flight, "ready_after_s": ready,
                              "replaced_after_s": replaced, "at": at})
                print(f"  killed {stage} (pid {pid}) with {in_flight} requests in flight: ready again after {ready} s, "
                      f"replaced after {replaced} s", flush=True)
            while load.done() < load.limit and any(t.is_alive() for t in load.threads):
                time.sleep(0.2)
        finally:
            load.stop()

    outcomes = load.outcomes
    kinds = Counter(o["kind"] for o in outcomes)
    clear = {k for k in kinds if k == "ok" or k.endswith("_retry_after")}
    lost = [o for o in outcomes if o["kind"] not in clear and o["kind"] != "hung"]
    for kill in kills:  # the answers of the requests in flight when this replica was killed
        spanning = [o for o in outcomes if o["sent_at"] <= kill["at"] <= o["sent_at"] + o["seconds"]]
        kill["answers_of_requests_in_flight"] = dict(Counter(o["kind"] for o in spanning))
        kill["error_messages"] = dict(Counter(o["detail"][:160] for o in spanning if o["kind"] != "ok"))
        kill.pop("at")
    report = {"profile": args.profile, "clients": args.clients,
              "ingress_replicas": args.ingress_replicas, "deadline_s": args.deadline_s,
              "client_timeout_s": client_timeout, "requests_sent": len(outcomes), "by_kind": dict(kinds),
              "succeeded": kinds.get("ok", 0), "clear_errors": sum(v for k, v in kinds.items() if k in clear - {"ok"}),
              "lost_requests": len(lost), "hung_requests": kinds.get("hung", 0),
              "lost_examples": [{"kind": o["kind"], "detail": o.get("detail", "")} for o in lost[:5]],
              "kills": kills}
    print(f"\n{label('simulated', args.profile)}, {args.clients} clients, {len(outcomes)} requests: {dict(kinds)}")
    print(f"{'stage killed':<14}{'in flight':>10}{'ready after s':>15}{'replaced after s':>18}  answers of the requests in flight")
    for kill in kills:
        print(f"{kill['stage']:<14}{kill['requests_in_flight']:>10}{str(kill['ready_after_s']):>15}"
              f"{str(kill['replaced_after_s']):>18}  {kill['answers_of_requests_in_flight']}")
    print(f"lost requests {report['lost_requests']}, hung requests {report['hung_requests']}")
    results.write("chaos" if args.clients == 16 else f"chaos_{args.clients}", report, label("simulated", args.profile))
    return 0


if __name__ == "__main__":
    sys.exit(main())
