"""The job's driver: lists the corpus, builds the Ray Data pipeline, reassembles documents, writes
shards, prints progress and the summary, and decides the exit status."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import sys
import time

from serve_app.bulk.collect import Collector, Progress
from serve_app.bulk.config import BulkConfig, parse_args
from serve_app.bulk.io import Output, list_inputs
from serve_app.bulk.items import from_row
from serve_app.bulk.workers import LayoutWorker, RecognizeWorker, ServeWorker, render_document
from serve_app.options import OptionError


def run(config: BulkConfig) -> int:
    from serve_app.config import load_config

    app = load_config(config.app)  # validated before any work starts
    try:
        options = config.options(app)
    except OptionError as exc:
        raise SystemExit(f"[bulk] bad document option: {exc}") from None
    fingerprint = config.fingerprint()
    sources = list_inputs(config.input)
    output = Output(config.output, config.markdown_files, config.jsonl)
    recovered = output.recover()
    if recovered:
        print(f"[bulk] {recovered} documents committed by an interrupted run compacted into a shard", flush=True)
    done = output.completed(fingerprint, config.retry_failed)
    if config.skip_by == "source":
        items = [{"source": s, "done_hash": ""} for s in sources if s not in done]
    else:
        items = [{"source": s, "done_hash": done.get(s, "")} for s in sources]
    progress = Progress(len(sources), len(sources) - len(items), config.progress_every_s)
    print(f"[bulk] {len(sources)} documents, {len(done)} written earlier with fingerprint {fingerprint} "
          f"(skipped by {config.skip_by})", flush=True)
    status = _stream(config, app, options, fingerprint, items, progress, output) if items else "ok"
    summary = progress.summary()
    if status == "ok" and progress.failure_rate() > config.max_doc_error_rate:
        status = "failed"
    summary["job_status"] = status
    output.write_summary(summary)
    print("[bulk] summary " + json.dumps(summary), flush=True)
    return 0 if status == "ok" else 1


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
    ds = ds.map_batches(LayoutWorker, batch_size=app.layout.batch_size, batch_format="numpy",
                        compute=ActorPoolStrategy(size=config.layout_workers), **_resources(app.layout),
                        fn_constructor_kwargs={"layout": app.layout.model_dump(mode="json"), "options": options})
    return ds.map_batches(RecognizeWorker, batch_size=config.recognize_batch, batch_format="numpy",
                          compute=ActorPoolStrategy(size=config.recognize_workers,
                                                    max_concurrent_calls_per_actor=config.recognize_batches_in_flight),
                          **_resources(app.recognizer),
                          fn_constructor_kwargs={"recognizer": app.recognizer_config().model_dump(mode="json"), "options": options,
                                                 "retries": config.page_retries, "backoff": config.retry_backoff_s})


def _resources(stage) -> dict:
    return {"num_cpus": stage.num_cpus, **({"num_gpus": stage.num_gpus} if stage.num_gpus else {})}


def _stream(config: BulkConfig, app, options, fingerprint: str, items: list[dict], progress: Progress,
            output: Output) -> str:
    """Documents as they complete: each committed on its own before it counts as done, then compacted
    into a shard every ``shard_size`` documents or ``flush_every_s`` seconds."""
    collector = Collector(fingerprint, options, config.max_page_error_rate)
    buffer: list[dict] = []
    last_flush, status = time.monotonic(), "ok"
    try:
        for item in pipeline(config, app, options, items).iter_rows():
            row = collector.add(from_row(item))
            if row is None:
                continue
            if row["status"] != "skipped":
                with _uninterrupted():  # committed and in the buffer, or neither
                    output.commit(row)
                    buffer.append(row)
            progress.add(row)
            if len(buffer) >= config.shard_size or time.monotonic() - last_flush >= config.flush_every_s:
                with _uninterrupted():  # compacted and the buffer emptied, or neither
                    output.compact(buffer)
                    buffer, last_flush = [], time.monotonic()
            if progress.documents >= config.abort_after and progress.failure_rate() > config.max_doc_error_rate:
                print(f"[bulk] stopping: {progress.failure_rate():.0%} of {progress.documents} documents failed "
                      f"(max_doc_error_rate {config.max_doc_error_rate}); see failures_by_kind", flush=True)
                status = "aborted"
                break
    except KeyboardInterrupt:  # `ray job stop` (SIGTERM) or Ctrl-C: keep what is complete
        print("[bulk] stopped; documents in flight are parsed again by the next run", flush=True)
        status = "stopped"
    finally:
        _Stop.critical = True  # a second signal waits: the last documents are compacted first
        output.compact(buffer)
    return status


class _Stop:
    """SIGTERM (``ray job stop``) and Ctrl-C end the run with a KeyboardInterrupt, but never inside
    a commit or a compaction: one that arrives there is raised when it is done."""

    critical = False
    requested = False


def _interrupt(signum, frame):
    if _Stop.critical:
        _Stop.requested = True
    else:
        raise KeyboardInterrupt


@contextlib.contextmanager
def _uninterrupted():
    _Stop.critical = True
    try:
        yield
    finally:
        _Stop.critical = False
    if _Stop.requested:
        _Stop.requested = False
        raise KeyboardInterrupt


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    config = parse_args(argv, description=(sys.modules["serve_app.bulk"].__doc__ or "").split("\n\n")[0])
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    if os.environ.get("RAY_ADDRESS"):  # inside `ray job submit`, or pointed at a cluster
        import ray

        ray.init(log_to_driver=False)
    else:  # a local run: its own single-node Ray on 127.0.0.1
        from serve_app.launch import init_local_ray

        init_local_ray(log_to_driver=False)
    return run(config)
