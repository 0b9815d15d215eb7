"""PP-DocLayoutV2 and PP-DocLayoutV3 on torch through transformers, with our own pre-processing and
decoding (800x800 bicubic resize, /255; sigmoid scores, top-k over query x class, reading order from
the order logits' pairwise votes; V3 adds each selected query's mask), so torchvision is not needed
(transformers' V3 image processor imports it)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Mapping, Union

import numpy as np

from deployments.gpu_memory import CUDA_CONTEXT_GIB, GIB
from deployments.labels import PP_DOCLAYOUT_V2_LABELS
from deployments.layout.backends import INPUT_SIZE, LayoutLoadError, RawLayout
from deployments.layout.backends.checks import check_label_map, wrong_model
from deployments.layout.config import HF_LAYOUT_MODELS, LayoutConfig

log = logging.getLogger(__name__)
#: config.json ``model_type`` of each layout model.
MODEL_TYPES = {"PP-DocLayoutV2": "pp_doclayout_v2", "PP-DocLayoutV3": "pp_doclayout_v3"}
#: PaddleX's safetensors converter (paddlex/modules/base/utils/pdparams2safetensors/model_config.py,
#: 3.7.2) writes coarse names for these ids into the config.json of both PP-DocLayoutV2 and V3
#: (display/inline formula -> formula, footer_image -> footer, header_image -> header,
#: vertical_text -> text). Same ids, same order, so they are accepted for exactly these ids.
CONVERTER_NAMES = {5: "formula", 9: "footer", 13: "header", 15: "formula", 23: "text"}


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


def select(logits: np.ndarray, boxes: np.ndarray, order_logits: np.ndarray, width: int,
           height: int) -> tuple[np.ndarray, np.ndarray]:
    """One page's outputs → all top-k rows [cls, score, x1, y1, x2, y2, order] (k = number of
    queries, best score first) and the query each row came from."""
    num_queries, num_classes = logits.shape
    scores = sigmoid(logits.reshape(-1))
    top = np.argsort(-scores, kind="stable")[:num_queries]
    query, cls = top // num_classes, top % num_classes
    cx, cy, w, h = boxes[query].T
    xyxy = np.stack([(cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height], 1)
    return np.column_stack([cls, scores[top], xyxy, order_ranks(order_logits)[query] + 1]), query


def decode(logits: np.ndarray, boxes: np.ndarray, order_logits: np.ndarray, width: int, height: int,
           score_floor: float) -> np.ndarray:
    """One page's outputs → rows [cls, score, x1, y1, x2, y2, order] above ``score_floor``."""
    rows, _ = select(logits, boxes, order_logits, width, height)
    return rows[rows[:, 1] >= score_floor]


class TransformersLayout:
    labels = PP_DOCLAYOUT_V2_LABELS

    def __init__(self, config: LayoutConfig, device: str):
        import torch
        import transformers

        name = config.model_name
        source = config.model or HF_LAYOUT_MODELS[name]
        local = Path(source).is_absolute() or source.startswith(".")
        if local:
            _check_dir(Path(source), name)
            check_checkpoint(json.loads((Path(source) / "config.json").read_text()), source, name)
        dtype = getattr(torch, config.resolved_dtype)  # auto: fp32 on every device
        if device == "cpu" and dtype != torch.float32:
            log.warning("layout dtype %s on CPU: torch's CPU grid_sample (the decoder's deformable attention) gives "
                        "wrong results in half precision on channels-last inputs; use dtype: auto (float32)", dtype)
        model_class = getattr(transformers, name.replace("-", "") + "ForObjectDetection")
        try:
            model = model_class.from_pretrained(source, dtype=dtype)
        except OSError as exc:
            raise LayoutLoadError(
                f"could not load the layout model {source!r} ({str(exc).splitlines()[0]}); on a machine with hub "
                f"access run `huggingface-cli download {HF_LAYOUT_MODELS[name]} --local-dir DIR` and set "
                "layout.model to DIR") from None
        if not local:  # a hub checkpoint: its config.json is in the cache now
            check_checkpoint(transformers.PreTrainedConfig.get_config_dict(source)[0], source, name)
        self.masks = name == "PP-DocLayoutV3"
        self.model, self.device, self.dtype, self.torch = model.to(device).eval(), device, dtype, torch

    def peak_gib(self) -> float:
        """GPU memory this process holds at its peak: torch's reserved pool (kept cached after the
        warm-up batch) plus the CUDA context, which torch does not see."""
        reserved = self.torch.cuda.max_memory_reserved(self.torch.device(self.device))
        return round(reserved / GIB + CUDA_CONTEXT_GIB, 2)

    def predict(self, images: list[np.ndarray], score_floor: float) -> list[Union[np.ndarray, RawLayout]]:
        """Rows per page; with PP-DocLayoutV3 a :class:`RawLayout` with each kept row's mask."""
        torch = self.torch
        pixels = torch.from_numpy(preprocess(images)).to(self.device, self.dtype)
        with torch.inference_mode():
            out = self.model(pixel_values=pixels)
        logits, boxes, order = (t.float().cpu().numpy() for t in (out.logits, out.pred_boxes, out.order_logits))
        if not self.masks:
            return [decode(logits[i], boxes[i], order[i], img.shape[1], img.shape[0], score_floor)
                    for i, img in enumerate(images)]
        pages = []
        for i, img in enumerate(images):
            rows, query = select(logits[i], boxes[i], order[i], img.shape[1], img.shape[0])
            keep = rows[:, 1] >= score_floor
            pages.append(RawLayout(rows[keep], self._binary_masks(out.out_masks[i], query[keep])))
        return pages

    def _binary_masks(self, mask_logits, query: np.ndarray) -> np.ndarray:
        """The chosen queries' masks as uint8 0/1 (gathered on the device: a page's 300 float masks
        are 48 MB). A pixel belongs to the region where sigmoid(logit) > 0.5, PaddleDetection's
        mask threshold (transformers binarises at its score threshold, 0.5 by default). At an
        800x800 input the masks are 200x200: the x4 backbone feature's resolution."""
        torch = self.torch
        chosen = mask_logits[torch.as_tensor(query, device=mask_logits.device)]
        return (chosen.float().sigmoid() > 0.5).to(torch.uint8).cpu().numpy()


def check_checkpoint(config: Mapping, source: str, model_name: str) -> None:
    """Refuse a transformers checkpoint (its config.json as a dict) of the other layout model, or
    one whose ``id2label`` does not name our classes in order."""
    found = config.get("model_type")
    if found != MODEL_TYPES[model_name]:
        found_name = next((name for name, kind in MODEL_TYPES.items() if kind == found), None)
        raise wrong_model(source, found_name, f"config.json model_type {found!r}", model_name,
                          f"checkpoint ({HF_LAYOUT_MODELS[model_name]})")
    check_label_map(config.get("id2label") or {}, f"{source!r} (config.json id2label)", model_name, CONVERTER_NAMES)


def _check_dir(path: Path, model_name: str) -> None:
    hub_id = HF_LAYOUT_MODELS[model_name]
    if not path.is_dir():
        raise LayoutLoadError(f"layout model directory {path} does not exist; set layout.model to a directory "
                              f"holding config.json and model.safetensors, or to the hub id {hub_id}")
    missing = [f for f in ("config.json", "model.safetensors") if not (path / f).exists()]
    if missing:
        raise LayoutLoadError(f"layout model directory {path} has no {', '.join(missing)}; it must be a "
                              f"transformers checkpoint such as {hub_id} (for Paddle inference files "
                              "use backend: paddlex)")
