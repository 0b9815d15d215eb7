"""The job's driver: lists the corpus, builds the Ray Data pipeline, reassembles documents, writes
shards, prints progress and the summary, and decides the exit status."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from typing import Optional

from serve_app import crashpoints
from serve_app.bulk.collect import Collector, Progress
from serve_app.bulk.config import BulkConfig, parse_args
from serve_app.bulk.io import list_inputs
from serve_app.bulk.items import from_row
from serve_app.bulk.output import Output
from serve_app.bulk.stopping import GracefulStop
from serve_app.bulk.workers import LayoutWorker, RecognizeWorker, ServeWorker, render_document
from serve_app.options import OptionError


def run(config: BulkConfig, stop: Optional[GracefulStop] = None) -> int:
    """One bulk run; ``stop`` (installed by ``main``) turns SIGTERM/SIGINT into a clean stop."""
    from serve_app.config import ConfigError, load_config

    try:  # both validated before any work starts
        app = load_config(config.app)
        options = config.options(app)
    except ConfigError as exc:
        raise SystemExit(f"[bulk] bad --config or --set: {exc}") from None
    except OptionError as exc:
        raise SystemExit(f"[bulk] bad document option: {exc.message}") from None
    stop, fingerprint = stop or GracefulStop(), config.fingerprint()
    output = Output(config.output, config.markdown_files, config.jsonl)
    output.claim()
    try:
        return _run(config, app, options, fingerprint, output, stop)
    finally:
        output.release()


def _run(config: BulkConfig, app, options, fingerprint: str, output: Output, stop: GracefulStop) -> int:
    progress, status = Progress(0, 0, config.progress_every_s), "ok"
    try:
        items, progress = _resume(config, output, fingerprint, stop)
        if items:
            status = _stream(config, app, options, fingerprint, items, progress, output, stop)
    except KeyboardInterrupt:
        status = _stopped(stop)
    stop.stop()  # the summary is written whatever signal comes now
    summary = progress.summary()
    if status == "ok" and progress.failure_rate() > config.max_doc_error_rate:
        status = "failed"
    summary["job_status"] = status
    output.write_summary(summary)
    print("[bulk] summary " + json.dumps(summary), flush=True)
    return 0 if status == "ok" else 1


def _resume(config: BulkConfig, output: Output, fingerprint: str, stop: GracefulStop) -> tuple[list[dict], Progress]:
    """What an earlier run left, finished (``Output.recover``); then the documents to read, each
    with the content hash of its row already written (skipped when the bytes are the same)."""
    sources = list_inputs(config.input)
    with stop.step():
        recovered = output.recover()
    if recovered:
        print(f"[bulk] {recovered} documents committed by an interrupted run compacted into a shard", flush=True)
    done = output.completed(fingerprint, config.retry_failed)
    if config.skip_by == "source":
        items = [{"source": s, "done_hash": ""} for s in sources if s not in done]
    else:
        items = [{"source": s, "done_hash": done.get(s, "")} for s in sources]
    print(f"[bulk] {len(sources)} documents, {len(done)} written earlier with fingerprint {fingerprint} "
          f"(skipped by {config.skip_by})", flush=True)
    return items, Progress(len(sources), len(sources) - len(items), config.progress_every_s)


def pipeline(config: BulkConfig, app, options, items: list[dict]):
    """The Ray Data dataset of page and document items (streaming; nothing runs until iterated)."""
    import ray
    from ray.data import ActorPoolStrategy, DataContext

    execution = DataContext.get_current().execution_options  # bounds the images in flight, whatever the corpus
    execution.resource_limits = execution.resource_limits.copy(object_store_memory=int(config.object_store_gb * 2**30))
    ds = ray.data.from_items(items, override_num_blocks=min(len(items), 4096))
    if config.serve_url:
        return ds.map_batches(ServeWorker, batch_size=1, batch_format="numpy", num_cpus=0.25,
                              compute=ActorPoolStrategy(size=config.serve_clients),
                              fn_constructor_kwargs={"serve_url": config.serve_url, "request": config.request})
    from deployments.recognizer.recognizer import pages_need_text_layer

    # ``options`` (a frozen pydantic model) is pickled to every worker as itself. Pages carry their
    # PDF's words only where the recognition engine reads them.
    text_layer = pages_need_text_layer(app.recognizer_config(), options.text_layer)
    ds = ds.flat_map(render_document, fn_kwargs={"renderer": app.renderer.model_dump(mode="json"), "options": options,
                                                 "text_layer": text_layer},
                     num_cpus=config.render_num_cpus)
    layout = app.layout_config()
    ds = ds.map_batches(LayoutWorker, batch_size=layout.batch_size, batch_format="numpy",
                        compute=ActorPoolStrategy(size=config.layout_workers), **_resources(layout),
                        fn_constructor_kwargs={"layout": layout.model_dump(mode="json"), "options": options})
    return ds.map_batches(RecognizeWorker, batch_size=config.recognize_batch, batch_format="numpy",
                          compute=ActorPoolStrategy(size=config.recognize_workers,
                                                    max_concurrent_calls_per_actor=config.recognize_batches_in_flight),
                          **_resources(app.recognizer_config()),
                          fn_constructor_kwargs={"recognizer": app.recognizer_config().model_dump(mode="json"), "options": options,
                                                 "retries": config.retries()})


def _resources(stage) -> dict:
    return {"num_cpus": stage.num_cpus, **({"num_gpus": stage.num_gpus} if stage.num_gpus else {})}


def _stream(config: BulkConfig, app, options, fingerprint: str, items: list[dict], progress: Progress,
            output: Output, stop: GracefulStop) -> str:
    """Documents as they complete, each committed before it counts as done. A stop signal ends the
    loop between steps; what was committed is compacted before the run ends, whatever ends it."""
    collector, writer = Collector(fingerprint, options, config.max_page_error_rate), Writer(output, config, stop)
    status = "ok"
    try:
        for item in pipeline(config, app, options, items).iter_rows():
            row = collector.add(from_row(item))
            if row is None:
                continue
            with stop.step():  # committed and counted, or neither
                writer.add(row)
                progress.add(row)
            if progress.documents >= config.abort_after and progress.failure_rate() > config.max_doc_error_rate:
                print(f"[bulk] stopping: {progress.failure_rate():.0%} of {progress.documents} documents failed "
                      f"(max_doc_error_rate {config.max_doc_error_rate}); see failures_by_kind", flush=True)
                status = "aborted"
                break
    except KeyboardInterrupt:
        status = _stopped(stop)
    finally:
        stop.stop()  # from here on a signal changes nothing: the last documents are compacted first
        with crashpoints.phase("stop" if status == "stopped" else ""):
            writer.flush()  # writes nothing twice if a compaction was cut short
    return status


class Writer:
    """The driver's side of the commit protocol (``output.py``): each finished document committed
    at once, then compacted with the others every ``shard_size`` documents or ``flush_every_s``
    seconds; no stop signal lands inside either step."""

    def __init__(self, output: Output, config: BulkConfig, stop: GracefulStop):
        self.output, self.stop = output, stop
        self.shard_size, self.flush_every_s = config.shard_size, config.flush_every_s
        self.buffer: list[dict] = []  # committed, not yet in a shard
        self.last_flush = time.monotonic()

    def add(self, row: dict) -> None:
        if row["status"] != "skipped":
            with self.stop.step():  # committed and in the buffer, or neither
                self.output.commit(row)
                self.buffer.append(row)
        if len(self.buffer) >= self.shard_size or time.monotonic() - self.last_flush >= self.flush_every_s:
            self.flush()

    def flush(self) -> None:
        with self.stop.step():  # compacted and the buffer emptied, or neither
            self.output.compact(self.buffer)
            self.buffer, self.last_flush = [], time.monotonic()


def _stopped(stop: GracefulStop) -> str:
    stop.stop()
    crashpoints.reached("stopping")
    print("[bulk] stopped; documents in flight are parsed again by the next run", flush=True)
    return "stopped"


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    config = parse_args(argv, description=(sys.modules["serve_app.bulk"].__doc__ or "").split("\n\n")[0])
    if os.environ.get("RAY_ADDRESS"):  # inside `ray job submit`, or pointed at a cluster
        import ray

        ray.init(log_to_driver=False)
    else:  # a local run: its own single-node Ray on 127.0.0.1
        from serve_app.launch import init_local_ray

        init_local_ray(log_to_driver=False)
    stop = GracefulStop()
    stop.install()  # after ray.init, which set its own SIGTERM handler (sys.exit, anywhere)
    return run(config, stop)
