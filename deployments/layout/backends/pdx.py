"""PP-DocLayoutV2 and PP-DocLayoutV3 through PaddleX on paddlepaddle (the card's own stack).

PaddleX's own pre-processing and Paddle inference run; we take the model's raw ``[N, 7]`` rows
(and V3's masks) before PaddleX post-processes them, so per-request options go through our
post-processing like every other backend.
"""

from __future__ import annotations

from pathlib import Path
from typing import Union

import numpy as np

from deployments.labels import PP_DOCLAYOUT_V2_LABELS
from deployments.layout.backends import LayoutLoadError, RawLayout
from deployments.layout.backends.checks import check_label_map, wrong_model
from deployments.layout.config import HF_LAYOUT_MODELS, LayoutConfig

REQUIRED_FILES = ("inference.yml", "inference.pdiparams")
#: The [paddle] extra pins PyPI's paddlepaddle, a CPU build; PyPI's paddlepaddle-gpu stops at 2.6.
#: CUDA builds come from Paddle's own index (CUDA 12.9 builds carry sm_120 for RTX 50xx cards).
PADDLE_GPU_INSTALL = ("pip uninstall -y paddlepaddle && pip install paddlepaddle-gpu==3.3.1 "
                      "-i https://www.paddlepaddle.org.cn/packages/stable/cu129/")


class PaddleXLayout:
    labels = PP_DOCLAYOUT_V2_LABELS

    def __init__(self, config: LayoutConfig, device: str):
        from paddlex import create_model

        name = config.model_name
        if config.model is not None:
            _check_dir(Path(config.model), name)
            _check_model_name(Path(config.model), name)  # before PaddleX's bare "Model name mismatch"
        paddle_device = "cpu" if device == "cpu" else device.replace("cuda", "gpu") if ":" in device else "gpu:0"
        if paddle_device != "cpu":
            import paddle

            if not paddle.device.is_compiled_with_cuda():
                raise LayoutLoadError(
                    f"layout.device is {device!r} but the installed paddlepaddle {paddle.__version__} is a CPU build "
                    f"(the [paddle] extra); for the GPU install the CUDA 12.9 build: `{PADDLE_GPU_INSTALL}` (driver "
                    ">= 575; sm_120 for RTX 50xx), or run the same model with backend: transformers "
                    f"({HF_LAYOUT_MODELS[name]}), or use device: cpu")
        try:
            self.model = create_model(name, model_dir=config.model, device=paddle_device)
        except Exception as exc:  # noqa: BLE001 - PaddleX raises many types; all mean "cannot start"
            raise LayoutLoadError(f"PaddleX could not create {name} from {config.model or 'its model hub'} "
                                  f"on {paddle_device} ({exc}); check the directory and the paddlepaddle build") from None
        check_label_map(self.model.config["label_list"], f"{config.model or name!r} (inference.yml label_list)", name)

    def predict(self, images: list[np.ndarray], score_floor: float) -> list[Union[np.ndarray, RawLayout]]:
        """Rows per page; with PP-DocLayoutV3 (three outputs: rows, counts, masks) a
        :class:`RawLayout` with each kept row's mask, as PaddleX hands them to its post-processing."""
        model = self.model
        datas = [np.ascontiguousarray(img[..., ::-1]) for img in images]  # PaddleX reads arrays as BGR
        for op in model.pre_ops[:-1]:
            datas = op(datas)
        preds = model._format_output(model.runner(model.pre_ops[-1](datas)))
        out = []
        for pred in preds:
            boxes = np.asarray(pred["boxes"], dtype=np.float64)
            rows = boxes.reshape(-1, boxes.shape[-1] or 7)
            keep = rows[:, 1] >= score_floor
            if "masks" in pred:  # int32 0/1 from the exported graph; uint8 as RawLayout wants
                out.append(RawLayout(rows[keep], np.asarray(pred["masks"]).astype(np.uint8)[keep]))
            else:
                out.append(rows[keep])
        return out


def _check_model_name(path: Path, model_name: str) -> None:
    import yaml

    found = (yaml.safe_load((path / "inference.yml").read_text()) or {}).get("Global", {}).get("model_name")
    if found != model_name:
        raise wrong_model(str(path), found if found in ("PP-DocLayoutV2", "PP-DocLayoutV3") else None,
                          f"inference.yml Global.model_name {found!r}", model_name, "Paddle inference directory")


def _check_dir(path: Path, model_name: str) -> None:
    if not path.is_dir():
        raise LayoutLoadError(f"layout model directory {path} does not exist; set layout.model to a PaddleX "
                              f"{model_name} inference directory (inference.yml, inference.json, inference.pdiparams)")
    missing = [f for f in REQUIRED_FILES if not (path / f).exists()]
    if missing or not ((path / "inference.json").exists() or (path / "inference.pdmodel").exists()):
        raise LayoutLoadError(f"layout model directory {path} is not a Paddle inference model (missing "
                              f"{', '.join(missing) or 'inference.json'}); export one with PaddleX or use "
                              "backend: transformers with a safetensors checkpoint")
