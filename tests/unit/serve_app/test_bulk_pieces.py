"""Bulk pieces without Ray: documents reassembled from pages in any order, error rates, the
rendering step and the command line (the output and its commit protocol: test_bulk_output.py)."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from deployments.datamodel import BlockResult, PageError, PageImage, PageResult
from devtools.documents import corrupt_pdf, text_pdf
from serve_app.bulk.collect import Collector, Progress
from serve_app.bulk.config import NOT_BULK, BulkConfig, parse_args, request_flags
from serve_app.bulk.items import DocumentDone, DocumentTask, PageTask, from_row, to_row
from serve_app.bulk.workers import render_document
from serve_app.config import AppConfig
from serve_app.options import ParseOptions
from serve_app.protocol import InferRequest


def page(source, index, count, error_kind="", doc_id="h"):
    doc = DocumentTask(source, doc_id, 0.0, count)
    image = PageImage(doc_id[:16], index, count, np.zeros((0, 0, 3), np.uint8))
    if error_kind:
        result = PageResult.failed(image, PageError("recognize", error_kind, "x"))
    else:
        result = PageResult(index, 100, 100, page_count=count,
                            blocks=[BlockResult("text", (0, 0, 90, 20), f"{source} p{index}")])
    return from_row(to_row(PageTask(doc, image, [], result)))  # through the Ray Data codec


def done(source, kind="", skipped=False):
    return DocumentDone(DocumentTask(source), PageError("render", kind, "needs a password") if kind else None, skipped)


def collector(rate=0.5):
    return Collector("fp", ParseOptions(), max_page_error_rate=rate)


def test_pages_in_any_order_make_one_row_per_document_when_the_last_page_arrives():
    collect = collector()
    pages = [page("a", i, 5) for i in range(5)] + [page("b", i, 2) for i in range(2)]
    random.Random(3).shuffle(pages)
    rows = [row for p in pages if (row := collect.add(p))]
    assert sorted(r["source"] for r in rows) == ["a", "b"] and not collect.open
    a = next(r for r in rows if r["source"] == "a")
    assert a["markdown"] == [f"a p{i}" for i in range(5)] and a["status"] == "ok" and a["pages_ok"] == 5
    assert a["fingerprint"] == "fp" and a["error_kind"] is None
    assert json.loads(a["pruned_result"][0])["parsing_res_list"][0]["block_content"] == "a p0"


def test_failed_pages_make_a_partial_or_failed_document_and_document_items_pass_through():
    collect = collector()
    assert collect.add(page("p", 0, 2, "deadline_exceeded")) is None
    partial = collect.add(page("p", 1, 2))
    assert partial["status"] == "partial" and partial["page_errors"] == ["deadline_exceeded: x", ""]
    assert partial["page_error_kinds"] == ["deadline_exceeded", ""] and partial["markdown"] == ["", "p p1"]
    for i in range(2):
        failed = collect.add(page("f", i, 2, "render_failed"))
    assert failed["status"] == "failed" and failed["error_kind"] == "too_many_failed_pages"
    bad = collect.add(done("c", "encrypted_pdf"))
    assert (bad["status"], bad["error_kind"], bad["page_count"], bad["markdown"]) == ("failed", "encrypted_pdf", 0, [])
    assert bad["error"] == "needs a password"
    assert collect.add(done("s", skipped=True))["status"] == "skipped"


def test_progress_counts_failures_by_kind_and_skips():
    progress = Progress(total=4, skipped=1, every_s=3600)
    collect = collector()
    for item in (page("a", 0, 1), done("b", "corrupt_pdf"), done("c", skipped=True)):
        progress.add(collect.add(item))
    summary = progress.summary()
    assert summary["documents"] == 2 and summary["skipped"] == 2 and summary["pages"] == 1
    assert summary["failures_by_kind"] == {"corrupt_pdf": 1} and progress.failure_rate() == 0.5
    assert "4/4 documents (2 skipped as done)" in progress.line()


def test_rendering_yields_selected_pages_or_one_document_item_and_skips_done_content(tmp_path):
    good, bad = tmp_path / "good.pdf", tmp_path / "bad.pdf"
    good.write_bytes(text_pdf(3, "Page {n}"))
    bad.write_bytes(corrupt_pdf())

    def render(row, **request):
        return [from_row(r) for r in render_document(row, renderer={}, options=ParseOptions.from_request(request))]

    pages = render({"source": str(good)})
    assert [p.page.page_index for p in pages] == [0, 1, 2] and {p.doc.pages for p in pages} == {3}
    assert pages[0].page.image.shape[2] == 3 and pages[0].page.error is None
    assert [p.page.page_index for p in render({"source": str(good)}, pageRanges="2-3")] == [1, 2]
    [item] = render({"source": str(good)}, pageRanges="4")
    assert item.error.kind == "bad_page_range" and "outside 1-3" in item.error.message
    [item] = render({"source": str(bad)})
    assert isinstance(item, DocumentDone) and item.error.kind == "corrupt_pdf" and item.error.stage == "render"
    [item] = render({"source": str(tmp_path / "gone.pdf")})
    assert item.error.kind == "unreadable_source" and "check the path" in item.error.message
    [item] = render({"source": str(good), "done_hash": pages[0].doc.doc_id})
    assert item.skipped


def test_render_tasks_skip_the_words_of_pages_whose_engine_does_not_read_them(tmp_path):
    source = tmp_path / "words.pdf"
    source.write_bytes(text_pdf(2, "Words on page {n}"))

    def layers(text_layer):
        rows = render_document({"source": str(source)}, renderer={}, options=ParseOptions.from_request({}),
                               text_layer=text_layer)
        return [from_row(r).page.text_layer for r in rows]

    with_words, without = layers(True), layers(False)
    assert len(with_words) == 2 and all(layer.words for layer in with_words)
    assert without == [None, None]


def test_command_line_flags_and_fingerprint(tmp_path):
    (tmp_path / "app.yaml").write_text("applications:\n- name: x\n  args: {layout: {num_gpus: 0.1}}\n")
    config = parse_args(["--input", "in", "--output", "out", "--config", str(tmp_path / "app.yaml"),
                         "--recognize-workers", "3", "--skip-by", "source", "--jsonl",
                         "--retry-backoff-s", "1", "2", "3"])
    assert config.app == {"layout": {"num_gpus": 0.1}} and config.recognize_workers == 3 and config.jsonl
    assert config.skip_by == "source" and config.retry_backoff_s == [1.0, 2.0, 3.0]
    same = BulkConfig(input="x", output="y", app={"layout": {"num_gpus": 0.1}}, recognize_workers=9)
    assert same.fingerprint() == config.fingerprint() != BulkConfig(input="in", output="out").fingerprint()
    with pytest.raises(SystemExit):
        parse_args(["--input", "in", "--output", "out", "--skip-by", "name"])


def test_bulk_takes_the_launchers_overrides(tmp_path, monkeypatch):
    """A container's PADDLEOCR_VL_SET (model directories) reaches a bulk job as it reaches `serve`."""
    (tmp_path / "app.yaml").write_text("applications:\n- name: x\n  args: {layout: {num_gpus: 0.1}}\n")
    monkeypatch.setenv("PADDLEOCR_VL_SET", "recognizer.model=/models/PaddleOCR-VL layout.model=/models/L")
    config = parse_args(["--input", "in", "--output", "out", "--config", str(tmp_path / "app.yaml"),
                         "--set", "layout.batch_size=4"])
    assert config.app == {"layout": {"num_gpus": 0.1, "model": "/models/L", "batch_size": 4},
                          "recognizer": {"model": "/models/PaddleOCR-VL"}}


def test_every_api_option_is_a_bulk_flag():
    config = parse_args(["--input", "in", "--output", "out", "--prettify-markdown", "false", "--layout-threshold",
                         "{22: 0.35}", "--use-chart-recognition", "true", "--page-ranges", "1-2", "--top-p", "0.5"])
    assert config.request == {"prettifyMarkdown": False, "layoutThreshold": {22: 0.35}, "useChartRecognition": True,
                              "pageRanges": "1-2", "topP": 0.5}
    assert config.fingerprint() != BulkConfig(input="in", output="out").fingerprint()
    options = config.options(AppConfig())
    assert options.plan.use_chart_recognition and not options.markdown.pretty and options.layout.threshold == {22: 0.35}
    flags = set(request_flags().values())
    assert flags == set(InferRequest.model_fields) - set(NOT_BULK)


def test_a_misspelt_document_option_stops_the_job_naming_the_option_it_meant():
    from serve_app.options import OptionError

    config = BulkConfig(input="in", output="out", request={"prettifyMarkdwn": False})
    with pytest.raises(OptionError, match="prettifyMarkdwn: not an option of the request; did you mean 'prettifyMarkdown'"):
        config.options(AppConfig())
