"""PP-DocLayoutV2 through PaddleX on paddlepaddle (the card's own stack).

PaddleX's own pre-processing and Paddle inference run; we take the model's raw ``[N, 7]`` rows
before PaddleX post-processes them, so per-request options go through our post-processing like
every other backend.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from deployments.layout.backends import LayoutLoadError
from deployments.layout.config import LayoutConfig

REQUIRED_FILES = ("inference.yml", "inference.pdiparams")
#: The [paddle] extra pins PyPI's paddlepaddle, a CPU build; PyPI's paddlepaddle-gpu stops at 2.6.
#: CUDA builds come from Paddle's own index (CUDA 12.9 builds carry sm_120 for RTX 50xx cards).
PADDLE_GPU_INSTALL = ("pip uninstall -y paddlepaddle && pip install paddlepaddle-gpu==3.3.1 "
                      "-i https://www.paddlepaddle.org.cn/packages/stable/cu129/")


class PaddleXLayout:
    def __init__(self, config: LayoutConfig, device: str):
        from paddlex import create_model

        if config.model is not None:
            _check_dir(Path(config.model))
        paddle_device = "cpu" if device == "cpu" else device.replace("cuda", "gpu") if ":" in device else "gpu:0"
        if paddle_device != "cpu":
            import paddle

            if not paddle.device.is_compiled_with_cuda():
                raise LayoutLoadError(
                    f"layout.device is {device!r} but the installed paddlepaddle {paddle.__version__} is a CPU build "
                    f"(the [paddle] extra); for the GPU install the CUDA 12.9 build: `{PADDLE_GPU_INSTALL}` (driver "
                    ">= 575; sm_120 for RTX 50xx), or run the same model with backend: transformers "
                    "(PaddlePaddle/PP-DocLayoutV2_safetensors), or use device: cpu")
        try:
            self.model = create_model("PP-DocLayoutV2", model_dir=config.model, device=paddle_device)
        except Exception as exc:  # noqa: BLE001 - PaddleX raises many types; all mean "cannot start"
            raise LayoutLoadError(f"PaddleX could not create PP-DocLayoutV2 from {config.model or 'its model hub'} "
                                  f"on {paddle_device} ({exc}); check the directory and the paddlepaddle build") from None
        self.labels = tuple(self.model.config["label_list"])

    def predict(self, images: list[np.ndarray], score_floor: float) -> list[np.ndarray]:
        model = self.model
        datas = [np.ascontiguousarray(img[..., ::-1]) for img in images]  # PaddleX reads arrays as BGR
        for op in model.pre_ops[:-1]:
            datas = op(datas)
        preds = model._format_output(model.runner(model.pre_ops[-1](datas)))
        out = []
        for pred in preds:
            boxes = np.asarray(pred["boxes"], dtype=np.float64)
            rows = boxes.reshape(-1, boxes.shape[-1] or 7)
            out.append(rows[rows[:, 1] >= score_floor])
        return out


def _check_dir(path: Path) -> None:
    if not path.is_dir():
        raise LayoutLoadError(f"layout model directory {path} does not exist; set layout.model to a PaddleX "
                              "PP-DocLayoutV2 inference directory (inference.yml, inference.json, inference.pdiparams)")
    missing = [f for f in REQUIRED_FILES if not (path / f).exists()]
    if missing or not ((path / "inference.json").exists() or (path / "inference.pdmodel").exists()):
        raise LayoutLoadError(f"layout model directory {path} is not a Paddle inference model (missing "
                              f"{', '.join(missing) or 'inference.json'}); export one with PaddleX or use "
                              "backend: transformers with a safetensors checkpoint")
