"""Each pipeline version's defaults against PaddleX 3.7.2's own files: its pipeline YAML (layout
model, thresholds, NMS, unclip, merge modes, seal switch, Markdown-ignored labels, VLM name) and
its genai server's chat template (what the assistant turn starts with)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from deployments.labels import V1_MARKDOWN_IGNORE_LABELS
from deployments.pipelines import PIPELINES
from serve_app.config import AppConfig
from serve_app.options import ParseOptions

pytestmark = pytest.mark.differential


def _paddlex_dir() -> Path:
    import paddlex

    return Path(paddlex.__file__).parent


@pytest.mark.parametrize("version", list(PIPELINES))
def test_pipeline_defaults_are_paddlex_yaml(version):
    spec = PIPELINES[version]
    yml = yaml.safe_load((_paddlex_dir() / "configs/pipelines" / f"{spec.name}.yaml").read_text())
    assert yml["pipeline_name"] == spec.name
    layout = yml["SubModules"]["LayoutDetection"]
    assert layout["model_name"] == spec.layout_model
    opts = AppConfig(pipeline=version).layout.options
    assert opts.threshold == layout["threshold"]
    assert opts.nms is layout["layout_nms"]
    assert list(opts.unclip_ratio) == layout["layout_unclip_ratio"]
    assert opts.merge_bboxes_mode == layout["layout_merge_bboxes_mode"]
    assert yml["SubModules"]["VLRecognition"]["model_name"] == spec.vlm_name
    settings = ParseOptions().report()
    assert settings["use_seal_recognition"] is yml.get("use_seal_recognition", False)
    assert settings["use_chart_recognition"] is yml["use_chart_recognition"]
    assert settings["merge_layout_blocks"] is yml["merge_layout_blocks"]
    assert settings["format_block_content"] is yml["format_block_content"]
    assert tuple(yml["markdown_ignore_labels"]) == V1_MARKDOWN_IGNORE_LABELS


@pytest.mark.parametrize("version", list(PIPELINES))
def test_fallback_chat_template_renders_as_paddlex_genai_template(version):
    from jinja2 import Template

    spec = PIPELINES[version]
    source = (_paddlex_dir() / "inference/genai/chat_templates" / f"{spec.vlm_name}.jinja").read_text()
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "OCR:"}]}]
    rendered = Template(source).render(messages=messages, add_generation_prompt=True, bos_token="<s>")
    assert rendered == spec.chat_template.format(prompt="OCR:")
