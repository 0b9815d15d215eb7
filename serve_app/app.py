"""``build_app(args)``: the Serve application graph from an ``AppConfig``.

    serve run serve_app:app                       # defaults: offline CPU (lite models)
    serve run configs/cpu.yaml                    # a Serve config file (see configs/)
    serve run serve_app:build_app config=configs/app-gpu-16gb.yaml

This is the only module that turns stage classes into Serve deployments.
"""

from __future__ import annotations

from typing import Any, Union

from ray import serve

from deployments.layout.detector import LayoutDetector
from deployments.recognizer.recognizer import Recognizer
from deployments.renderer import Renderer
from serve_app.config import AppConfig, load_config
from serve_app.ingress import Ingress, api
from serve_app.stages import LayoutStage, RecognizeStage, RenderStage


def _options(config: AppConfig, name: str, stage_options: dict[str, Any]) -> dict[str, Any]:
    """The stage's own resources (``get_deployment_options``) plus the deployment settings."""
    return {"name": name, **stage_options, **config.deployment(name).serve_options()}


def build_app(args: Union[None, dict, str, AppConfig] = None) -> serve.Application:
    """The application: ingress (CPU) → renderer (CPU), layout (GPU fraction), recognizer (GPU)."""
    config = load_config(args)
    renderer = serve.deployment(RenderStage, **_options(
        config, "renderer", Renderer.get_deployment_options(config.renderer)))
    layout = serve.deployment(LayoutStage, **_options(
        config, "layout", LayoutDetector.get_deployment_options(config.layout)))
    recognizer = serve.deployment(RecognizeStage, **_options(
        config, "recognizer", Recognizer.get_deployment_options(config.recognizer)))
    ingress = serve.deployment(serve.ingress(api)(Ingress), **_options(
        config, "ingress", {"ray_actor_options": {"num_cpus": config.ingress.num_cpus}}))
    return ingress.bind(renderer.bind(config.renderer), layout.bind(config.layout),
                        recognizer.bind(config.recognizer_config()), config)


app = build_app()
