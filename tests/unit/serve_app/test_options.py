"""ParseOptions: built once from a request over the server's defaults, messages for people, and
``model_settings`` as an output only."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from deployments.datamodel import PageResult
from deployments.labels import V1_MARKDOWN_IGNORE_LABELS
from deployments.layout.options import LayoutOptions
from deployments.recognizer.options import PlanOptions
from serve_app.options import OptionDefaults, OptionError, ParseOptions, describe
from serve_app.protocol import InferRequest


def test_defaults_match_the_official_pipeline():
    options = ParseOptions.from_request({})
    assert options == ParseOptions()
    assert options.report() == {
        "use_doc_preprocessor": False, "use_layout_detection": True, "use_chart_recognition": False,
        "use_seal_recognition": False, "use_ocr_for_image_block": False, "format_block_content": False,
        "merge_layout_blocks": True, "markdown_ignore_labels": list(V1_MARKDOWN_IGNORE_LABELS),
        "return_layout_polygon_points": True}
    request = options.page_request(12.5)
    assert request.plan == PlanOptions() and request.sampling.temperature == 0.0 and request.timeout_s == 12.5
    assert options.text_layer == request.text_layer == "auto"  # the recognizer decides per engine


def test_request_values_land_in_the_stage_options_over_the_server_defaults():
    server_layout, server_plan = LayoutOptions(nms=False), PlanOptions(pixel_profile="v1")
    options = ParseOptions.from_request(
        {"layoutThreshold": 0.3, "useChartRecognition": True, "topP": 0.5, "maxNewTokens": 9,
         "prettifyMarkdown": False, "showFormulaNumber": True, "markdownIgnoreLabels": [], "visualize": False,
         "vlmExtraArgs": {"table_max_pixels": 500000}, "restructurePages": True, "mergeTables": False,
         "pageRanges": "2-3", "deadlineSeconds": 30, "layoutShapeMode": "rect", "formatBlockContent": True,
         "textLayer": "prefer"},
        OptionDefaults(layout=server_layout, plan=server_plan, visualize=True, deadline_s=600))
    assert options.layout.threshold == 0.3 and options.layout.nms is False  # the server's default stays
    assert options.plan.pixel_profile == "v1" and options.plan.use_chart_recognition
    assert options.plan.kind_pixels == {"table": (147384, 500000)}
    assert (options.sampling.top_p, options.sampling.max_new_tokens) == (0.5, 9)
    assert not options.markdown.pretty and options.markdown.show_formula_number and options.markdown.ignored == ()
    assert options.restructure.enabled and not options.restructure.merge_tables
    assert (options.page_ranges, options.deadline_s, options.visualize) == ("2-3", 30, False)
    assert options.page_request().text_layer == "prefer"
    report = options.report(PageResult(0, 10, 10, recognized_as_images=("table",)))
    assert report["use_chart_recognition"] and report["format_block_content"] and report["markdown_ignore_labels"] == []
    assert report["return_layout_polygon_points"] is False and report["recognized_as_images"] == ["table"]


def test_prompt_label_chart_or_seal_turns_that_recognition_on():
    assert ParseOptions.from_request({"useLayoutDetection": False, "promptLabel": "Chart"}).plan.use_chart_recognition
    seal = ParseOptions.from_request({"useLayoutDetection": False, "promptLabel": "seal"})
    assert seal.plan.use_seal_recognition and seal.prompt_label == "seal" and not seal.use_layout


@pytest.mark.parametrize("request_options, message", [
    ({"layoutThreshold": 3}, "layoutThreshold: must be in [0, 1], got 3"),
    ({"layoutThreshold": {"22": 1.5}}, "layoutThreshold: must be in [0, 1], got {22: 1.5}"),
    ({"topP": 2}, "topP: Input should be less than or equal to 1, got 2.0"),
    ({"temperature": -1}, "temperature: Input should be greater than or equal to 0, got -1.0"),
    ({"maxNewTokens": 0}, "maxNewTokens: Input should be greater than 0, got 0"),
    ({"minPixels": 5000, "maxPixels": 10}, "minPixels (5000) must not exceed maxPixels (10)"),
    ({"maxPixels": 10}, "minPixels (112896) must not exceed maxPixels (10)"),  # the profile's minimum
    ({"promptLabel": "poem"}, "promptLabel: must be one of ['ocr', 'formula', 'table', 'chart', 'seal', 'spotting'], "
                              "got 'poem'"),
    ({"pageRanges": "3-1"}, "pageRanges: '3-1' is reversed; write '1-3'"),
    ({"pageRanges": "0-2"}, "pageRanges: '0-2' starts below 1; pages are numbered from 1"),
    ({"pageRanges": "a-b"}, "pageRanges: 'a-b' is not like '1-3,5' (1-based, inclusive)"),
    ({"deadlineSeconds": 0}, "deadlineSeconds: Input should be greater than 0, got 0.0"),
    ({"layoutUnclipRatio": [1, 2, 3]}, "layoutUnclipRatio: Input should be a valid number, or Tuple should have at "
                                       "most 2 items after validation, not 3, or a valid dictionary, got [1, 2, 3]"),
    ({"layoutMergeBboxesMode": "biggest"}, "layoutMergeBboxesMode: Input should be 'large', 'small' or 'union', "
                                           "or a valid dictionary, got 'biggest'"),
    ({"vlmExtraArgs": {"foo_pixels": 1}}, "vlmExtraArgs: key 'foo_pixels' is not supported; supported: ["),
    ({"vlmExtraArgs": {"ocr_max_pixels": "lots"}}, "vlmExtraArgs.ocr_max_pixels: must be a positive integer, got 'lots'"),
    ({"vlmExtraArgs": {"ocr_min_pixels": 9000000}}, "vlmExtraArgs: ocr_min_pixels (9000000) must not exceed "
                                                    "ocr_max_pixels (1003520)"),
    ({"useDocUnwarping": True}, "useDocUnwarping: not available on this server (the official default is off); send "
                                "flat pages"),
    ({"outputFormats": ["docx"]}, "outputFormats: ['docx'] is not supported"),
    ({"textLayer": "sometimes"}, "textLayer: Input should be 'auto', 'off' or 'prefer', got 'sometimes'"),
])
def test_every_problem_names_the_option_and_the_value(request_options, message):
    with pytest.raises(OptionError) as raised:
        ParseOptions.from_request(request_options)
    assert message in str(raised.value)
    assert "{'type'" not in str(raised.value) and "[{" not in str(raised.value)  # no JSON dump of pydantic errors


def test_schema_errors_read_as_sentences():
    with pytest.raises(ValidationError) as raised:
        InferRequest.model_validate({"fileType": 3})
    text = describe(raised.value)
    assert "file: Field required" in text and "fileType: Input should be 0 or 1, got 3" in text


def test_the_report_is_output_only_and_round_trips_for_restructuring():
    options = ParseOptions.from_request({"useSealRecognition": True, "markdownIgnoreLabels": ["header"],
                                         "useLayoutDetection": False, "layoutShapeMode": "rect"})
    back = ParseOptions.from_report(options.report(), pretty=False)
    assert back.report() == options.report() and not back.markdown.pretty
    assert back.plan.use_seal_recognition and back.markdown.ignored == ("header",) and not back.use_layout
