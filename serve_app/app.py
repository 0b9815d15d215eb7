"""``build_app(args)``: the Serve application graph from an ``AppConfig``.

    serve run serve_app:app                       # defaults: offline CPU (lite models)
    serve run configs/cpu.yaml                    # a Serve config file (see configs/)
    serve run serve_app:build_app config=configs/app-gpu-16gb.yaml

This is the only module that turns stage classes into Serve deployments.
"""

from __future__ import annotations

from typing import Any, Union

from ray import serve

from serve_app.config import AppConfig, load_config
from serve_app.ingress import Ingress, api
from serve_app.stages import LayoutStage, RecognizeStage, RenderStage


def _options(config: AppConfig, name: str, actor_options: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "ray_actor_options": actor_options, **config.deployment(name).serve_options()}


def build_app(args: Union[None, dict, str, AppConfig] = None) -> serve.Application:
    """The application: ingress (CPU) → renderer (CPU), layout (GPU fraction), recognizer (GPU)."""
    config = load_config(args)
    renderer = serve.deployment(RenderStage, **_options(config, "renderer", {"num_cpus": config.renderer.num_cpus}))
    layout = serve.deployment(LayoutStage, **_options(
        config, "layout", {"num_cpus": config.layout.num_cpus, "num_gpus": config.layout.num_gpus}))
    recognizer = serve.deployment(RecognizeStage, **_options(
        config, "recognizer", {"num_cpus": config.recognizer.num_cpus, "num_gpus": config.recognizer.num_gpus}))
    ingress = serve.deployment(serve.ingress(api)(Ingress), **_options(config, "ingress", {"num_cpus": config.ingress.num_cpus}))
    return ingress.bind(renderer.bind(config.renderer), layout.bind(config.layout), recognizer.bind(config.recognizer),
                        config)


app = build_app()
