"""Shared fixtures: deterministic generators of pages, boxes and model outputs."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
