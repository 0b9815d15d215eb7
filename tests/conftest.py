"""Shared fixtures. Tests never reach a model hub: the tiny checkpoints are built here."""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before transformers is imported anywhere
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
sys.path.insert(0, str(Path(__file__).parent))

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny_layout_hf(tmp_path_factory) -> Path:
    from deployments.tiny_models import build_tiny_layout_transformers

    return build_tiny_layout_transformers(tmp_path_factory.mktemp("tiny-layout-hf"))


@pytest.fixture(scope="session")
def tiny_layout_paddle(tmp_path_factory) -> Path:
    from deployments.tiny_models import build_tiny_layout_paddle

    return build_tiny_layout_paddle(tmp_path_factory.mktemp("tiny-layout-paddle"))
