"""Bulk pieces without Ray: documents reassembled from pages in any order, error rates, shards,
resume bookkeeping, the rendering step and the command line."""

from __future__ import annotations

import json
import random

import pyarrow.parquet as pq
import pytest

from documents import corrupt_pdf, text_pdf
from serve_app.bulk.assemble import Assembler, Progress
from serve_app.bulk.config import BulkConfig, parse_args
from serve_app.bulk.io import completed, write_shard
from serve_app.bulk.stages import DOCUMENT, SKIPPED, render_document


def page(source, index, count, status="ok", error_kind="", doc_id="h"):
    return {"source": source, "doc_id": doc_id, "page_index": index, "page_count": count, "started": 0.0,
            "status": status, "error_kind": error_kind, "error": f"{error_kind}: x" if error_kind else "",
            "markdown": f"{source} p{index}", "pruned_result": "{}"}


def test_pages_in_any_order_make_one_row_per_document_when_the_last_page_arrives():
    assembler = Assembler("fp", max_page_error_rate=0.5)
    pages = [page("a", i, 5) for i in range(5)] + [page("b", i, 2) for i in range(2)]
    random.Random(3).shuffle(pages)
    rows = [row for p in pages if (row := assembler.add(p))]
    assert sorted(r["source"] for r in rows) == ["a", "b"] and not assembler.open
    a = next(r for r in rows if r["source"] == "a")
    assert a["markdown"] == [f"a p{i}" for i in range(5)] and a["status"] == "ok" and a["pages_ok"] == 5
    assert a["fingerprint"] == "fp" and a["error_kind"] is None


def test_failed_pages_make_a_partial_or_failed_document_and_document_rows_pass_through():
    assembler = Assembler("fp", max_page_error_rate=0.5)
    assert assembler.add(page("p", 0, 2, "failed", "deadline_exceeded")) is None
    partial = assembler.add(page("p", 1, 2))
    assert partial["status"] == "partial" and partial["page_errors"] == ["deadline_exceeded: x", ""]
    for i in range(2):
        failed = assembler.add(page("f", i, 2, "failed", "render_failed"))
    assert failed["status"] == "failed" and failed["error_kind"] == "too_many_failed_pages"
    bad = assembler.add({**page("c", DOCUMENT, 0, "failed", "encrypted_pdf"), "error": "needs a password"})
    assert (bad["status"], bad["error_kind"], bad["page_count"], bad["markdown"]) == ("failed", "encrypted_pdf", 0, [])
    assert assembler.add(page("s", SKIPPED, 0, "failed"))["status"] == "skipped"


def test_progress_counts_failures_by_kind_and_skips():
    progress = Progress(total=4, skipped=1, every_s=3600)
    assembler = Assembler("fp", 0.5)
    for p in (page("a", 0, 1), page("b", DOCUMENT, 0, "failed", "corrupt_pdf"), page("c", SKIPPED, 0)):
        progress.add(assembler.add(p))
    summary = progress.summary()
    assert summary["documents"] == 2 and summary["skipped"] == 2 and summary["pages"] == 1
    assert summary["failures_by_kind"] == {"corrupt_pdf": 1} and progress.failure_rate() == 0.5
    assert "4/4 documents (2 skipped as done)" in progress.line()


def test_shards_are_atomic_and_resume_keeps_the_newest_row_per_source(tmp_path):
    assembler = Assembler("fp", 0.5)
    old = assembler.add(page("a", 0, 1, doc_id="h1"))
    failed = assembler.add({**page("b", DOCUMENT, 0, "failed", "unreadable_source"), "doc_id": ""})
    write_shard(str(tmp_path), [old, failed], markdown_files=True, jsonl=True)
    new = {**assembler.add(page("a", 0, 1, doc_id="h2")), "finished_at": "9999"}
    write_shard(str(tmp_path), [new])
    other = {**new, "fingerprint": "other", "source": "z"}
    write_shard(str(tmp_path), [other])
    assert not [p for p in tmp_path.rglob("*") if p.name.startswith(".")]  # no temporary files left
    assert pq.read_table(tmp_path / "parquet").num_rows == 4
    assert completed(str(tmp_path), "fp") == {"a": "h2", "b": ""}
    assert completed(str(tmp_path), "fp", retry_failed=True) == {"a": "h2"}
    assert completed(str(tmp_path / "nothing"), "fp") == {}
    assert (tmp_path / "markdown" / "h1.md").read_text() == "a p0"
    assert [json.loads(line)["source"] for line in (tmp_path / "jsonl").glob("*.jsonl").__next__().open()] == ["a", "b"]


def test_rendering_yields_pages_or_one_document_row_and_skips_done_content(tmp_path):
    good, bad = tmp_path / "good.pdf", tmp_path / "bad.pdf"
    good.write_bytes(text_pdf(2, "Page {n}"))
    bad.write_bytes(corrupt_pdf())
    pages = list(render_document({"source": str(good)}, renderer={}))
    assert [p["page_index"] for p in pages] == [0, 1] and {p["page_count"] for p in pages} == {2}
    assert len(pages[0]["image"]) == pages[0]["height"] * pages[0]["width"] * 3 and not pages[0]["error_kind"]
    [row] = render_document({"source": str(bad)}, renderer={})
    assert row["page_index"] == DOCUMENT and row["error_kind"] == "corrupt_pdf" and row["error_stage"] == "render"
    [row] = render_document({"source": str(tmp_path / "gone.pdf")}, renderer={})
    assert row["error_kind"] == "unreadable_source" and "check the path" in row["error"]
    [row] = render_document({"source": str(good), "done_hash": pages[0]["doc_id"]}, renderer={})
    assert row["page_index"] == SKIPPED


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
