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
