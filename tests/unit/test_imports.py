"""Runtime code must not import PaddleX (a test-only oracle), torch, vLLM or Ray at import time."""

import subprocess
import sys

MODULES = [
    "deployments.datamodel", "deployments.labels", "deployments.layout.postprocess", "deployments.recognizer.planning",
    "deployments.recognizer.results", "deployments.renderer", "deployments.layout.detector", "serve_app.assemble",
    "serve_app.demo", "serve_app.__main__",
]


def test_runtime_modules_import_no_heavy_or_test_only_packages():
    code = (f"import sys\nfor m in {MODULES!r}: __import__(m)\n"
            "print(sorted(p for p in ('paddlex', 'paddle', 'torch', 'vllm', 'ray') if p in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_every_benchmark_imports_only_the_harness_and_the_project():
    """Scenarios run as ``python -m benchmarks.NAME`` from the repository root: no ``sys.path``
    edits, no imports of each other or of the tests (the harness and devtools hold what they share)."""
    import ast
    import importlib
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    scenarios = sorted(p for p in (root / "benchmarks").glob("*.py") if p.name != "__init__.py")
    assert len(scenarios) >= 14
    for path in scenarios:
        tree = ast.parse(path.read_text())
        assert "sys.path" not in path.read_text(), path.name
        modules = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
        modules |= {a.name for node in ast.walk(tree) if isinstance(node, ast.Import) for a in node.names}
        local = {m for m in modules if m.split(".")[0] in {p.stem for p in scenarios} | {"conftest", "tests"}}
        assert not local, (path.name, local)
        assert callable(getattr(importlib.import_module(f"benchmarks.{path.stem}"), "main")), path.name
