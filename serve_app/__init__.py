"""PaddleOCR-VL document parsing on Ray Serve.

Python::

    from ray import serve
    from serve_app import build_app
    serve.run(build_app({"recognizer": {"engine": "vllm", "model": "PaddlePaddle/PaddleOCR-VL"}}))

YAML (``serve run serve_app:build_app config=app.yaml``)::

    recognizer: {engine: vllm, model: PaddlePaddle/PaddleOCR-VL, num_gpus: 0.85}
    layout: {backend: transformers, device: cuda, num_gpus: 0.1}

``serve run serve_app:app`` starts the offline CPU default. Ray is imported only when the
application is built, so the document logic imports without it.
"""

from __future__ import annotations

__all__ = ["build_app", "app", "AppConfig"]


def __getattr__(name):
    if name in ("build_app", "app"):
        import importlib

        return getattr(importlib.import_module("serve_app.app"), name)
    if name == "AppConfig":
        from serve_app.config import AppConfig

        return AppConfig
    raise AttributeError(name)
