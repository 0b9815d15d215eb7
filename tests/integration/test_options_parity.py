"""Every option of the official request, set to a non-default value, gives the same Markdown and
``prunedResult`` through ``POST /layout-parsing`` and through a bulk job (its flags, its Ray Data
pipeline on the session's cluster) on the same document. Real engines on tiny checkpoints:
transformers PP-DocLayoutV2 for layout and transformers PaddleOCR-VL (fixed answer) for
recognition, which reads every block kind (charts and seals included)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import httpx
import pyarrow.parquet as pq
import pytest

from deployments.orientation import available as orientation_available
from devtools.tiny_models import FIXED_ANSWER
from devtools.documents import text_pdf
from serve_app.bulk.config import NOT_BULK
from serve_app.protocol import InferRequest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

#: Three requests that between them set every option of the API away from its default. The
#: temperature is tiny so that sampling stays deterministic with the fixed-answer checkpoint.
CASES = {
    "layout": {
        "useChartRecognition": True, "useSealRecognition": True, "useOcrForImageBlock": True,
        "formatBlockContent": True, "mergeLayoutBlocks": False, "layoutThreshold": {"22": 0.02, "17": 0.03},
        "layoutNms": False, "layoutUnclipRatio": [1.05, 1.1], "layoutMergeBboxesMode": "small",
        "layoutShapeMode": "rect", "repetitionPenalty": 1.05, "temperature": 0.01, "topP": 0.9,
        "minPixels": 50176, "maxPixels": 802816, "maxNewTokens": 12, "markdownIgnoreLabels": ["number"],
        "vlmExtraArgs": {"table_max_pixels": 602112, "ocr_min_pixels": 60000}, "prettifyMarkdown": False,
        "showFormulaNumber": True, "restructurePages": True, "mergeTables": False, "relevelTitles": False,
        "pageRanges": "2-3", "deadlineSeconds": 1800, "textLayer": "prefer",
    },
    "chart": {"useLayoutDetection": False, "promptLabel": "chart", "useChartRecognition": True,
              **({"useDocOrientationClassify": True} if orientation_available() else {})},
    "seal": {"useLayoutDetection": False, "promptLabel": "seal", "restructurePages": True, "mergeTables": True},
}
#: Options that make no difference to the Markdown/prunedResult or have no bulk counterpart.
#: Image correction and other output formats are refused with a 422 (tested in test_serve_app).
NOT_COMPARED = set(NOT_BULK) | {"outputFormats", "useDocUnwarping"} | (
    set() if orientation_available() else {"useDocOrientationClassify"})  # the orientation extra needs Python 3.11


def test_cases_cover_every_option_of_the_api():
    covered = {key for case in CASES.values() for key in case}
    assert set(InferRequest.model_fields) - NOT_COMPARED - covered == set()


@pytest.fixture(scope="module")
def app_config(tiny_layout_hf, tiny_vlm_fixed) -> dict:
    # One page per layout forward on both paths: Serve batches the pages that happen to arrive
    # together, a bulk job a fixed number, and CPU kernels round scores differently per batch size
    # in the last float digits (prunedResult carries the scores).
    return {"layout": {"backend": "transformers", "model": str(tiny_layout_hf), "options": {"threshold": 0.0},
                       "batch_size": 1},
            "recognizer": {"engine": "transformers", "model": str(tiny_vlm_fixed), "dtype": "float32"}}


@pytest.fixture(scope="module")
def parity_url(ray_session, app_config):
    from ray import serve

    from serve_app import build_app

    serve.run(build_app({**app_config, "name": "parity", "route_prefix": "/parity"}), name="parity",
              route_prefix="/parity")
    yield ray_session + "/parity"
    serve.delete("parity")


def over_http(url: str, pdf: bytes, request: dict) -> list[dict]:
    body = {"file": base64.b64encode(pdf).decode(), "fileType": 0, "visualize": False, **request}
    with httpx.Client(base_url=url, timeout=1800) as client:
        reply = client.post("/layout-parsing", json=body).json()
    assert reply["errorCode"] == 0, reply
    return reply["result"]["layoutParsingResults"]


def bulk_flags(request: dict) -> list[str]:
    """The request as `python -m serve_app.bulk` flags (YAML values)."""
    from serve_app.bulk.config import request_flags

    by_name = {name: flag for flag, name in request_flags().items()}
    return [arg for key, value in request.items() for arg in (by_name[key], json.dumps(value))]


def through_bulk(tmp_path, app_config: dict, pdf: bytes, request: dict) -> dict:
    from serve_app.bulk.config import parse_args
    from serve_app.bulk.driver import run

    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "doc.pdf").write_bytes(pdf)
    config = parse_args(["--input", str(tmp_path / "in"), "--output", str(tmp_path / "out"),
                         "--recognize-batch", "4", "--progress-every-s", "60", *bulk_flags(request)])
    config = config.model_copy(update={"app": app_config})
    assert run(config) == 0
    (row,) = pq.read_table(tmp_path / "out" / "parquet").to_pylist()
    return row


@pytest.mark.parametrize("case", list(CASES))
def test_same_options_same_bytes_over_http_and_in_bulk(case, parity_url, app_config, tmp_path):
    pdf = text_pdf(3, "Parity page {n}: words to read. " * 30)  # text down the page, where tiny boxes fall
    entries = over_http(parity_url, pdf, CASES[case])
    row = through_bulk(tmp_path, app_config, pdf, CASES[case])
    assert row["status"] == "ok" and row["page_count"] == len(entries)
    assert row["markdown"] == [e["markdown"]["text"] for e in entries]
    assert [json.loads(p) for p in row["pruned_result"]] == [e["prunedResult"] for e in entries]
    settings = entries[0]["prunedResult"]["model_settings"]
    if case == "layout":
        assert len(entries) == 2 and settings["use_chart_recognition"] and settings["format_block_content"]
        assert settings["return_layout_polygon_points"] is False and settings["markdown_ignore_labels"] == ["number"]
        assert all("global_block_id" in b for b in entries[0]["prunedResult"]["parsing_res_list"])
        sources = [b.get("block_source") for e in entries for b in e["prunedResult"]["parsing_res_list"]]
        assert "text_layer" in sources, sources  # textLayer prefer: text blocks skipped the model
    if case == "chart":  # the chart's text is read and kept, as an HTML table
        assert settings["use_chart_recognition"] is True
        if orientation_available():
            assert settings["use_doc_preprocessor"] is True
            assert all(e["prunedResult"]["doc_preprocessor_res"]["angle"] == 0 for e in entries)  # upright pages
        assert all(f"<th style='text-align: center;'>{FIXED_ANSWER}</th>" in m for m in row["markdown"])
    if case == "seal":  # the seal's text is read and kept
        assert settings["use_seal_recognition"] is True
        assert all(FIXED_ANSWER in m for m in row["markdown"])


def failing_pages_pdf() -> bytes:
    """A text page, a blank page (the simulated layout model fails on it), a page too large to
    render at any allowed scale, an all-black page (the simulated layout replica dies on it the
    first time), a text page."""
    import pymupdf

    book = pymupdf.open()
    with pymupdf.open(stream=text_pdf(1, "Parity page one: words to read."), filetype="pdf") as first:
        book.insert_pdf(first)
    book.new_page()
    book.new_page(width=14000, height=14000)
    black = book.new_page()
    black.draw_rect(black.rect + (-10, -10, 10, 10), color=(0, 0, 0), fill=(0, 0, 0))
    with pymupdf.open(stream=text_pdf(1, "Parity page five: words to read."), filetype="pdf") as last:
        book.insert_pdf(last)
    return book.tobytes()


def faulty_config(tiny_vlm_fixed, faults: Path) -> dict:
    return {"renderer": {"max_page_pixels": 5_000_000},
            "layout": {"backend": "simulated", "simulated_faults": str(faults)},
            "recognizer": {"engine": "transformers", "model": str(tiny_vlm_fixed), "dtype": "float32"}}


def test_a_failing_page_fails_alike_over_http_and_in_bulk(ray_session, tiny_vlm_fixed, tmp_path):
    """One vocabulary: a page the renderer cannot render and a page the layout model fails on get the
    same error kind and message on both paths, and the other pages the same bytes; a page whose
    layout replica dies under it is parsed again on both (Serve: the pipeline's retries on a
    restarted replica; bulk: Ray Data's on a restarted actor) and gives the same bytes."""
    from ray import serve

    from serve_app import build_app

    over_serve = faulty_config(tiny_vlm_fixed, tmp_path / "serve-faults")
    serve.run(build_app({**over_serve, "name": "faults", "route_prefix": "/faults"}), name="faults",
              route_prefix="/faults")
    try:
        entries = over_http(ray_session + "/faults", failing_pages_pdf(), {})
    finally:
        serve.delete("faults")
    row = through_bulk(tmp_path, faulty_config(tiny_vlm_fixed, tmp_path / "bulk-faults"), failing_pages_pdf(), {})
    for path in ("serve-faults", "bulk-faults"):  # the replica died on the black page on both paths
        assert len(list((tmp_path / path).glob("lost-replica-*"))) == 1, path
    errors = [(e["error"]["kind"], e["error"]["message"]) if "error" in e else None for e in entries]
    assert [e and e[0] for e in errors] == [None, "layout_failed", "page_too_large", None, None]
    assert [e and e[1].split(":")[0] for e in errors][1] == "page 2"
    assert row["status"] == "partial" and row["page_status"] == [e["status"] for e in entries]
    assert row["page_error_kinds"] == [e[0] if e else "" for e in errors]
    assert row["page_errors"] == [f"{e[0]}: {e[1]}" if e else "" for e in errors]
    for page in (0, 3, 4):
        assert row["markdown"][page] == entries[page]["markdown"]["text"]
