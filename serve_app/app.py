"""``build_app(args)``: the Serve application graph from an ``AppConfig``.

    serve run serve_app:app                       # defaults: offline CPU (lite models)
    serve run configs/cpu.yaml                    # a Serve config file (see configs/)
    serve run serve_app:build_app config=configs/gpu-16gb.yaml

This is the only module that turns the stages' Serve classes (``deployments/serve.py``) into
deployments, with each stage's resources from its config (GPU fractions from the placement plan).
"""

from __future__ import annotations

from typing import Any, Union

from ray import serve

from deployments.layout.detector import LayoutDetector
from deployments.recognizer.recognizer import Recognizer
from deployments.renderer import Renderer
from serve_app.config import AppConfig, load_config
from serve_app.ingress import Ingress, api
from deployments.serve import LayoutStage, RecognizeStage, RenderStage


def deployment_options(config: AppConfig) -> dict[str, dict[str, Any]]:
    """Each deployment's Serve options: the stage's own resources (``get_deployment_options``)
    plus the deployment settings."""
    stages = {"renderer": Renderer.get_deployment_options(config.renderer),
              "layout": LayoutDetector.get_deployment_options(config.layout_config()),
              "recognizer": Recognizer.get_deployment_options(config.recognizer_config()),
              "ingress": {"ray_actor_options": {"num_cpus": config.ingress.num_cpus}}}
    return {name: {"name": name, **own, **config.deployment(name).serve_options()} for name, own in stages.items()}


def reserved_cpus(config: AppConfig) -> float:
    """Ray CPUs the application reserves with every deployment at its minimum replica count."""
    total = 0.0
    for options in deployment_options(config).values():
        replicas = options.get("num_replicas", options.get("autoscaling_config", {}).get("min_replicas", 1))
        total += replicas * options.get("ray_actor_options", {}).get("num_cpus", 1)
    return total


def build_app(args: Union[None, dict, str, AppConfig] = None) -> serve.Application:
    """The application: ingress (CPU) → renderer (CPU), layout (GPU fraction), recognizer (GPU)."""
    config = load_config(args)
    options = deployment_options(config)
    renderer = serve.deployment(RenderStage, **options["renderer"])
    layout = serve.deployment(LayoutStage, **options["layout"])
    recognizer = serve.deployment(RecognizeStage, **options["recognizer"])
    ingress = serve.deployment(serve.ingress(api)(Ingress), **options["ingress"])
    return ingress.bind(renderer.bind(config.renderer), layout.bind(config.layout_config()),
                        recognizer.bind(config.recognizer_config()), config)


app = build_app()
