"""PP-DocLayoutV2 on torch through transformers, with our own pre-processing and decoding
(800x800 bicubic resize, /255; sigmoid scores, top-k over query x class, reading order from the
order logits' pairwise votes), so torchvision is not needed."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from deployments.gpu_memory import CUDA_CONTEXT_GIB, GIB
from deployments.labels import PP_DOCLAYOUT_V2_LABELS
from deployments.layout.backends import LayoutLoadError
from deployments.layout.config import HF_LAYOUT_MODEL, LayoutConfig

INPUT_SIZE = 800
log = logging.getLogger(__name__)


def preprocess(images: list[np.ndarray]) -> np.ndarray:
    """RGB pages → float32 NCHW in [0, 1] at 800x800 (cv2 bicubic, as PaddleX resizes)."""
    import cv2

    batch = [cv2.resize(img, (INPUT_SIZE, INPUT_SIZE), interpolation=cv2.INTER_CUBIC) for img in images]
    return np.stack(batch).astype(np.float32).transpose(0, 3, 1, 2) / 255.0


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # no overflow for large |x|


def order_ranks(order_logits: np.ndarray) -> np.ndarray:
    """Reading-order rank of every query from pairwise "i before j" logits (Q x Q)."""
    scores = sigmoid(order_logits)
    votes = np.triu(scores, 1).sum(0) + np.tril(1.0 - scores.T, -1).sum(0)
    ranks = np.empty(len(votes), dtype=np.int64)
    ranks[np.argsort(votes, kind="stable")] = np.arange(len(votes))
    return ranks


def decode(logits: np.ndarray, boxes: np.ndarray, order_logits: np.ndarray, width: int, height: int,
           score_floor: float) -> np.ndarray:
    """One page's outputs → rows [cls, score, x1, y1, x2, y2, order] above ``score_floor``."""
    num_queries, num_classes = logits.shape
    scores = sigmoid(logits.reshape(-1))
    top = np.argsort(-scores, kind="stable")[:num_queries]
    query, cls = top // num_classes, top % num_classes
    cx, cy, w, h = boxes[query].T
    xyxy = np.stack([(cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height], 1)
    rows = np.column_stack([cls, scores[top], xyxy, order_ranks(order_logits)[query] + 1])
    return rows[rows[:, 1] >= score_floor]


class TransformersLayout:
    labels = PP_DOCLAYOUT_V2_LABELS

    def __init__(self, config: LayoutConfig, device: str):
        import torch
        from transformers import PPDocLayoutV2ForObjectDetection

        source = config.model or HF_LAYOUT_MODEL
        if Path(source).is_absolute() or source.startswith("."):
            _check_dir(Path(source))
        dtype = getattr(torch, config.resolved_dtype)  # auto: fp32 on every device
        if device == "cpu" and dtype != torch.float32:
            log.warning("layout dtype %s on CPU: torch's CPU grid_sample (the decoder's deformable attention) gives "
                        "wrong results in half precision on channels-last inputs; use dtype: auto (float32)", dtype)
        try:
            model = PPDocLayoutV2ForObjectDetection.from_pretrained(source, dtype=dtype)
        except OSError as exc:
            raise LayoutLoadError(
                f"could not load the layout model {source!r} ({str(exc).splitlines()[0]}); on a machine with hub "
                f"access run `huggingface-cli download {HF_LAYOUT_MODEL} --local-dir DIR` and set layout.model "
                "to DIR") from None
        if model.config.num_labels != len(self.labels):
            raise LayoutLoadError(f"{source!r} predicts {model.config.num_labels} classes; PP-DocLayoutV2 has 25")
        self.model, self.device, self.dtype, self.torch = model.to(device).eval(), device, dtype, torch

    def peak_gib(self) -> float:
        """GPU memory this process holds at its peak: torch's reserved pool (kept cached after the
        warm-up batch) plus the CUDA context, which torch does not see."""
        reserved = self.torch.cuda.max_memory_reserved(self.torch.device(self.device))
        return round(reserved / GIB + CUDA_CONTEXT_GIB, 2)

    def predict(self, images: list[np.ndarray], score_floor: float) -> list[np.ndarray]:
        torch = self.torch
        pixels = torch.from_numpy(preprocess(images)).to(self.device, self.dtype)
        with torch.inference_mode():
            out = self.model(pixel_values=pixels)
        logits, boxes, order = (t.float().cpu().numpy() for t in (out.logits, out.pred_boxes, out.order_logits))
        return [decode(logits[i], boxes[i], order[i], img.shape[1], img.shape[0], score_floor)
                for i, img in enumerate(images)]


def _check_dir(path: Path) -> None:
    if not path.is_dir():
        raise LayoutLoadError(f"layout model directory {path} does not exist; set layout.model to a directory "
                              f"holding config.json and model.safetensors, or to the hub id {HF_LAYOUT_MODEL}")
    missing = [f for f in ("config.json", "model.safetensors") if not (path / f).exists()]
    if missing:
        raise LayoutLoadError(f"layout model directory {path} has no {', '.join(missing)}; it must be a "
                              f"transformers checkpoint such as {HF_LAYOUT_MODEL} (for Paddle inference files "
                              "use backend: paddlex)")
