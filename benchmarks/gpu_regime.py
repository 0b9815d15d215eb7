"""Does the pipeline keep a GPU fed? The simulated engines (``deployments/simulation``: the GPU's
time is modelled, every CPU step is real) on one generated corpus (one-column, two-column, table
and formula pages, ~15 blocks a page), three ways:

- capacity: the simulated engine fed directly with every block of the corpus at once; pages
  divided by the engine's busy time (the ceiling: what the card could do if nothing else mattered);
- 16 clients, no server: the same engine in this process fed by 16 clients of one-page documents,
  each page rendered and detected beforehand and sent the moment the client's last one is read
  (what one-page documents from 16 clients allow any server: a page waits for its longest block);
- the same two 16-client runs (no server, and Serve) and the bulk run with the image processor's
  pixel work left out (``simulated_image_processor: sizes``: its patch counts only): what the data
  path allows when PaddleOCR-VL's processor, which vLLM runs on one thread of the engine's process,
  costs no CPU;
- official design: in one process, one page at a time, each page's blocks batched (how the
  official basic server reads a document);
- Serve: the application over HTTP on 127.0.0.1 at 1, 4, 16 and 64 clients, one-page documents;
  and at 16 clients with the corpus four times over, bound into ``--document-pages``-page PDFs
  (the pages of one document go through the stages together, as a user's PDFs do);
- bulk: bulk jobs (Ray Data, one layout and one recognition actor) over the corpus repeated
  ``--bulk-copies`` and three times as many times; pages/s after start-up from the difference.

Reports pages/s, p50/p99 latency, engine utilisation (busy fraction, mean running batch), the
CPU milliseconds a page of every Ray process (and the same outside the models: without
PaddleOCR-VL's image processor, which vLLM's front end runs and the engine times on its own
thread, and without the simulated scheduler, which stands in for vLLM's EngineCore process and
is timed on its own thread too; and the same again less what each process burns idle, sampled
for ``IDLE_S`` before the first client), the ratios the GPU-regime issue asks for, and writes ``benchmarks/results/gpu_regime_<profile>.json``.
Every figure is "simulated <profile>".

    .venv/bin/python benchmarks/gpu_regime.py [--profile rtx5090] [--pages 48] [--clients 1 4 16 64] [--bulk-copies 4]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from benchmarks.harness import results
from benchmarks.harness.apps import app_config, label
from benchmarks.harness.corpora import bound, page_corpus
from benchmarks.harness.inprocess import InProcess
from benchmarks.harness.load import percentiles, request
from benchmarks.harness.processes import cpu_by_name, idle_cpu_rates, ray_cpu_seconds
from benchmarks.harness.server import LocalServe

APP, PORT = "gpu-regime", 8095
IDLE_S = 10.0  # seconds each Serve run's processes are sampled idle, before its first client
CPU_STEPS = ("render", "layout pre/post-processing", "recognize: crops, JPEG, image processor", "assemble, encode, JSON")


def simulated(profile: str, cards: int = 0, processor: str = "run") -> dict:
    return app_config("simulated", profile=profile, cards=cards, processor=processor, name=APP)


def in_process(docs: list[bytes], profile: str) -> dict:
    """Capacity (all blocks at once) and 16 clients with no server (the engine fed directly with
    pages rendered and detected beforehand), then the official design (the pipeline in this
    process, one page at a time), all on one simulated card."""
    async def run() -> dict:
        async with InProcess(simulated(profile)) as local:
            stages, recognizer = local.stages, local.recognizer
            pages = [p for data in docs for p in stages.renderer.render_pages(data, "c", "pdf", [0], 1, text_layer=False)]
            boxes = stages.layout.detect_pages(pages, [None] * len(pages))
            capacity = await engine_capacity(recognizer, pages, boxes)
            closed_loop = await closed_loop_16(recognizer, pages, boxes)
        # The same card fed by 16 clients, the image processor's pixel work left out (its patch counts only).
        async with InProcess(simulated(profile, processor="sizes")) as sizes_only:
            closed_loop_sizes = await closed_loop_16(sizes_only.recognizer, pages, boxes)
        official = await official_design(docs, profile)
        return {"capacity": capacity, "closed_loop_16": closed_loop, "closed_loop_16_processor_sizes": closed_loop_sizes,
                "official": official}

    return asyncio.run(run())


async def engine_capacity(recognizer, pages, boxes) -> dict:
    """The card's own capacity: the GPU time the corpus needs with every block queued before the
    first step (the engine held while this process plans, crops and processes them all)."""
    with recognizer.engine.held():
        recognizer.engine_stats(reset=True)
        reads = asyncio.gather(*(recognizer.recognize(p, b) for p, b in zip(pages, boxes)))
        queued, still = 0, 0
        while still < 100:  # until no block has joined the queue for 1 s: every page planned
            await asyncio.sleep(0.01)
            queued, still = recognizer.unfinished(), (still + 1 if recognizer.unfinished() == queued else 0)
    start = time.perf_counter()
    await reads
    wall = time.perf_counter() - start
    stats = recognizer.engine_stats(reset=True)
    return {"pages_per_s": len(pages) / stats["busy_s"], "wall_pages_per_s": len(pages) / wall,
            "blocks_queued_at_once": queued, **stats}


async def official_design(docs: list[bytes], profile: str) -> dict:
    """The official basic server's design: each document through the pipeline in this process, one
    page at a time (a page's blocks batched), with the CPU of each step."""
    from serve_app.options import ParseOptions
    from serve_app.respond import document_entries

    options = ParseOptions.from_request({"visualize": False})
    async with InProcess(simulated(profile), one_page_at_a_time=True, timed=True) as local:
        local.recognizer.engine_stats(reset=True)
        start, latencies, total = time.perf_counter(), [], 0.0
        for data in docs:
            began, clock = time.perf_counter(), time.process_time()
            json.dumps(document_entries((await local.parse(data, options)).pages, options))
            total += time.process_time() - clock
            latencies.append(time.perf_counter() - began)
        wall = time.perf_counter() - start
        stats, steps = local.recognizer.engine_stats(reset=True), local.cpu
    cpu = {CPU_STEPS[0]: steps["render"], CPU_STEPS[1]: steps["layout"], CPU_STEPS[2]: steps["recognize"]}
    cpu[CPU_STEPS[3]] = total - sum(cpu.values())
    cpu["of which the image processor"] = stats["processor_cpu_s"]
    cpu["of which the simulated scheduler"] = stats["core_cpu_s"]
    return {"pages_per_s": len(docs) / wall, **_percentiles(latencies), **stats,
            "cpu_ms_per_page": {k: round(1000 * v / len(docs), 1) for k, v in cpu.items()},
            "cpu_ms_per_page_outside_models": round(1000 * (total - _engine_cpu_s(stats)) / len(docs), 1)}


async def closed_loop_16(recognizer, pages, boxes) -> dict:
    """16 clients, each sending its next page the moment its last one is read."""
    todo = list(zip(pages, boxes))

    async def client() -> None:
        while todo:
            await recognizer.recognize(*todo.pop())

    recognizer.engine_stats(reset=True)
    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(16)))
    return {"clients": 16, "pages_per_s": len(pages) / (time.perf_counter() - start),
            **recognizer.engine_stats(reset=True)}


def _engine_cpu_s(stats: dict) -> float:
    """The engine's own CPU seconds: the model's image processor and the simulated scheduler."""
    return stats["processor_cpu_s"] + stats["core_cpu_s"]


def _percentiles(latencies: list[float]) -> dict:
    return {k: v for k, v in percentiles(latencies).items() if k != "p95_s"}


def through_serve(docs: list[bytes], profile: str, clients_list: list[int], cards: int = 0,
                  pages_per_document: int = 1, processor: str = "run") -> list[dict]:
    import httpx

    with LocalServe(simulated(profile, cards, processor), PORT, num_gpus=cards) as server:
        recognizer = server.handle("recognizer")
        pages = len(docs)
        docs = bound(docs, pages_per_document) if pages_per_document > 1 else docs
        bodies = [request(d) for d in docs]
        rows = []
        with httpx.Client(base_url=server.url, timeout=1800) as client:
            client.post("/layout-parsing", json=bodies[0])  # warm-up
            idle = idle_cpu_rates(IDLE_S, APP)
            for clients in clients_list:
                rows.append(_serve_run(client, recognizer, bodies, pages, clients, cards, idle, pages_per_document,
                                       processor))
    return rows


def _serve_run(client, recognizer, bodies, pages, clients, cards, idle, pages_per_document, processor) -> dict:
    latencies, errors = [], 0

    def one(body):
        nonlocal errors
        began = time.perf_counter()
        response = client.post("/layout-parsing", json=body)
        latencies.append(time.perf_counter() - began)
        errors += response.status_code != 200 or response.json()["errorCode"] != 0

    if cards <= 1:  # one engine: its counters from here on
        recognizer.engine_stats.remote(True).result()
    before = ray_cpu_seconds(APP)
    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(one, bodies))
    wall = time.perf_counter() - start
    used = cpu_by_name(before, ray_cpu_seconds(APP))
    stats = recognizer.engine_stats.remote(True).result() if cards <= 1 else {"cards": cards}
    cpu_ms = {name: round(1000 * seconds / pages, 1) for name, seconds in used.items()}
    # What the pages cost: each process's CPU less what it burns idle over the same time.
    above_idle = {name: round(1000 * (seconds - idle.get(name, 0.0) * wall) / pages, 1)
                  for name, seconds in used.items()}
    row = {"clients": clients, "pages_per_document": pages_per_document, "image_processor": processor,
           "pages_per_s": pages / wall, "errors": errors, **_percentiles(latencies), **stats,
           "cpu_ms_per_page": dict(sorted(cpu_ms.items(), key=lambda kv: -kv[1])),
           "cpu_ms_per_page_total": round(sum(cpu_ms.values()), 1),
           "idle_cpu_ms_per_s": {name: round(1000 * rate, 1) for name, rate in idle.items()},
           "cpu_ms_per_page_above_idle": dict(sorted(above_idle.items(), key=lambda kv: -kv[1]))}
    if "processor_cpu_s" in stats:  # the engine's own CPU (image processor, scheduler) left out
        row["cpu_ms_per_page_engine"] = {"image processor": round(1000 * stats["processor_cpu_s"] / pages, 1),
                                         "simulated scheduler": round(1000 * stats["core_cpu_s"] / pages, 1)}
        row["cpu_ms_per_page_outside_models"] = round(sum(cpu_ms.values()) - 1000 * _engine_cpu_s(stats) / pages, 1)
        row["cpu_ms_per_page_outside_models_above_idle"] = round(
            sum(above_idle.values()) - 1000 * _engine_cpu_s(stats) / pages, 1)
    print(f"  Serve ({processor} processor), {max(cards, 1)} card(s), {clients} clients, {pages_per_document}-page "
          f"documents: {row['pages_per_s']:.2f} pages/s, CPU {row['cpu_ms_per_page_total']} ms a page", flush=True)
    return row


def through_bulk(docs: list[bytes], profile: str, copies: int, processor: str = "run") -> dict:
    """Two bulk jobs, over the corpus ``copies`` and ``3 × copies`` times; the pages the second
    parses beyond the first, over the time it takes beyond the first, is the rate after start-up
    (documents finish in bursts of a recognition batch, so their timestamps cannot give it)."""
    import shutil
    import tempfile
    from pathlib import Path

    from benchmarks.harness.bulk import run_bulk
    from benchmarks.harness.server import start_ray

    runs = []
    for n in (copies, 3 * copies):
        tmp = Path(tempfile.mkdtemp(prefix="gpu-regime-bulk-"))
        (tmp / "in").mkdir()
        for copy in range(n):
            for i, data in enumerate(docs):  # the same pages; each copy a document of its own (own bytes)
                (tmp / "in" / f"d{copy:02d}-{i:04d}.pdf").write_bytes(data + f"\n%copy {copy}\n".encode())
        start_ray()
        import ray

        try:  # the corpus copies and the job's output are removed at the end, whatever happens
            start = time.perf_counter()
            _, pages, _ = run_bulk(tmp / "in", tmp / "out", simulated(profile, processor=processor),
                                   render_num_cpus=0.25, recognize_batch=64, shard_size=64, progress_every_s=60)
            wall = time.perf_counter() - start
        finally:
            ray.shutdown()
            shutil.rmtree(tmp, ignore_errors=True)
        runs.append({"pages": pages, "wall_s": round(wall, 1), "pages_per_s": pages / wall})
        print(f"  bulk ({processor} processor): {pages} pages in {wall:.1f} s ({pages / wall:.2f} pages/s with "
              "start-up)", flush=True)
    steady = (runs[1]["pages"] - runs[0]["pages"]) / (runs[1]["wall_s"] - runs[0]["wall_s"])
    return {"image_processor": processor, "runs": runs, "steady_pages_per_s": steady}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="rtx5090")
    parser.add_argument("--pages", type=int, default=48)
    parser.add_argument("--clients", type=int, nargs="*", default=[1, 4, 16, 64],
                        help="Serve runs; none (--clients with no value) runs only capacity and the official design")
    parser.add_argument("--document-pages", type=int, default=4,
                        help="One more Serve run at 16 clients: the corpus four times over, bound into documents of "
                        "this many pages (0: none)")
    parser.add_argument("--bulk-copies", type=int, default=4, help="Bulk run over the corpus this many times (0: none)")
    parser.add_argument("--processor-sizes", action=argparse.BooleanOptionalAction, default=True,
                        help="One more Serve run at 16 clients (and bulk run, with --bulk-copies) with the image "
                        "processor's pixel work left out (simulated_image_processor: sizes)")
    parser.add_argument("--cards", type=int, nargs="*", default=[2],
                        help="Serve runs at 16 and 64 clients with this many simulated cards (one layout and one "
                        "recognition replica each)")
    args = parser.parse_args(argv)
    docs = page_corpus(args.pages)
    label_ = label("simulated", args.profile)
    local = in_process(docs, args.profile)
    print(f"{label_}: capacity {local['capacity']['pages_per_s']:.2f} pages/s, official design "
          f"{local['official']['pages_per_s']:.2f} pages/s", flush=True)
    serve_rows = through_serve(docs, args.profile, args.clients) if args.clients else []
    documents = (through_serve(docs * 4, args.profile, [16], pages_per_document=args.document_pages)
                 if args.document_pages > 1 else [])
    sizes = through_serve(docs, args.profile, [16], processor="sizes") if args.processor_sizes else []
    bulk = through_bulk(docs, args.profile, args.bulk_copies) if args.bulk_copies else None
    bulk_sizes = (through_bulk(docs, args.profile, args.bulk_copies, processor="sizes")
                  if args.bulk_copies and args.processor_sizes else None)
    cards = {n: through_serve(docs, args.profile, [16, 64], cards=n) for n in args.cards}
    capacity, official = local["capacity"]["pages_per_s"], local["official"]["pages_per_s"]
    report = {"profile": args.profile, "pages": args.pages,
              "capacity": local["capacity"], "closed_loop_16": local["closed_loop_16"],
              "closed_loop_16_processor_sizes": local["closed_loop_16_processor_sizes"], "official": local["official"],
              "serve": serve_rows, "serve_multi_page_documents": documents, "serve_processor_sizes": sizes, "bulk": bulk,
              "bulk_processor_sizes": bulk_sizes,
              "serve_on_cards": {str(n): rows for n, rows in cards.items()}}
    if bulk:
        report["bulk_share_of_capacity"] = round(bulk["steady_pages_per_s"] / capacity, 3)
    if bulk_sizes:
        report["bulk_share_of_capacity_processor_sizes"] = round(bulk_sizes["steady_pages_per_s"] / capacity, 3)
    # One engine's front end runs the image processor on one thread: the pages a second it can feed
    # at most, at its cost a page in the official design's run (one page at a time, no contention).
    processor_ms = local["official"]["cpu_ms_per_page"]["of which the image processor"]
    report["image_processor_ms_per_page"] = processor_ms
    report["image_processor_ceiling_pages_per_s"] = round(1000 / processor_ms, 2)
    at16 = next((r for r in serve_rows if r["clients"] == 16), None)
    if documents:
        report["share_of_capacity_16_multi_page"] = round(documents[0]["pages_per_s"] / capacity, 3)
    loop_sizes = local["closed_loop_16_processor_sizes"]["pages_per_s"]
    report["closed_loop_share_of_capacity_16_processor_sizes"] = round(loop_sizes / capacity, 3)
    if sizes:
        report["share_of_capacity_16_processor_sizes"] = round(sizes[0]["pages_per_s"] / capacity, 3)
        report["share_of_closed_loop_16_processor_sizes"] = round(sizes[0]["pages_per_s"] / loop_sizes, 3)
    if at16:
        report.update({"ratio_vs_official_16": round(at16["pages_per_s"] / official, 3),
                       "share_of_capacity_16": round(at16["pages_per_s"] / capacity, 3),
                       "closed_loop_share_of_capacity_16": round(local["closed_loop_16"]["pages_per_s"] / capacity, 3),
                       "share_of_closed_loop_16": round(at16["pages_per_s"] / local["closed_loop_16"]["pages_per_s"], 3),
                       "utilisation_16": at16["busy_fraction"],
                       "cpu_ms_per_page_16": at16["cpu_ms_per_page_total"],
                       "cpu_ms_per_page_outside_models_16": at16["cpu_ms_per_page_outside_models"],
                       "cpu_ms_per_page_outside_models_above_idle_16": at16["cpu_ms_per_page_outside_models_above_idle"]})
    print(f"\n{label_}, {args.pages} one-page documents")
    print(f"{'run':<22}{'pages/s':>9}{'p50 s':>8}{'p99 s':>8}{'busy':>7}{'batch':>7}{'errors':>8}")
    print(f"{'capacity (all blocks)':<22}{capacity:>9.2f}{'':>8}{'':>8}{local['capacity']['busy_fraction']:>7.0%}"
          f"{local['capacity']['mean_running']:>7}")
    for name, c in (("16 clients, no server", local["closed_loop_16"]),
                    ("the same, sizes only", local["closed_loop_16_processor_sizes"])):
        print(f"{name:<22}{c['pages_per_s']:>9.2f}{'':>8}{'':>8}{c['busy_fraction']:>7.0%}{c['mean_running']:>7}")
    o = local["official"]
    print(f"{'official design':<22}{official:>9.2f}{o['p50_s']:>8.2f}{o['p99_s']:>8.2f}{o['busy_fraction']:>7.0%}"
          f"{o['mean_running']:>7}")
    for r in serve_rows:
        print(f"{'Serve, ' + str(r['clients']) + ' clients':<22}{r['pages_per_s']:>9.2f}{r['p50_s']:>8.2f}"
              f"{r['p99_s']:>8.2f}{r['busy_fraction']:>7.0%}{r['mean_running']:>7}{r['errors']:>8}")
    for r in sizes:
        print(f"{'Serve, 16, sizes only':<22}{r['pages_per_s']:>9.2f}{r['p50_s']:>8.2f}"
              f"{r['p99_s']:>8.2f}{r['busy_fraction']:>7.0%}{r['mean_running']:>7}{r['errors']:>8}")
    for r in documents:
        name = f"Serve, 16, {r['pages_per_document']}-page docs"
        print(f"{name:<22}{r['pages_per_s']:>9.2f}{r['p50_s']:>8.2f}"
              f"{r['p99_s']:>8.2f}{r['busy_fraction']:>7.0%}{r['mean_running']:>7}{r['errors']:>8}")
    for n, rows in cards.items():
        for r in rows:
            print(f"{f'Serve, {n} cards, ' + str(r['clients']):<22}{r['pages_per_s']:>9.2f}{r['p50_s']:>8.2f}"
                  f"{r['p99_s']:>8.2f}{'':>7}{'':>7}{r['errors']:>8}")
    if bulk:
        print(f"{'bulk (after start-up)':<22}{bulk['steady_pages_per_s']:>9.2f}")
    if bulk_sizes:
        print(f"{'bulk, sizes only':<22}{bulk_sizes['steady_pages_per_s']:>9.2f}")
    if bulk:
        print(f"bulk after start-up: {report['bulk_share_of_capacity']:.0%} of capacity"
              + (f" ({report['bulk_share_of_capacity_processor_sizes']:.0%} with the processor's pixel work left out)"
                 if bulk_sizes else ""))
    if at16:
        print(f"Serve at 16 clients: {report['ratio_vs_official_16']}× the official design, "
              f"{report['share_of_capacity_16']:.0%} of capacity, engine busy {report['utilisation_16']:.0%}; CPU "
              f"{report['cpu_ms_per_page_16']} ms a page, {report['cpu_ms_per_page_outside_models_16']} ms outside the "
              f"models (the image processor and the simulated scheduler left out), "
              f"{report['cpu_ms_per_page_outside_models_above_idle_16']} of it above what the processes burn idle")
        print(f"16 one-page clients fed with no server at all reach {report['closed_loop_share_of_capacity_16']:.0%} of "
              f"capacity; Serve reaches {report['share_of_closed_loop_16']:.0%} of that")
    print(f"the image processor: {processor_ms} ms a page on its one thread, so one engine's front end feeds at most "
          f"{report['image_processor_ceiling_pages_per_s']} pages/s")
    print(f"with the image processor's pixel work left out (sizes only): 16 clients with no server "
          f"{report['closed_loop_share_of_capacity_16_processor_sizes']:.0%} of capacity"
          + (f", Serve {report['share_of_capacity_16_processor_sizes']:.0%}" if sizes else ""))
    results.write(f"gpu_regime_{args.profile}", report, label_)
    return 0


if __name__ == "__main__":
    sys.exit(main())
