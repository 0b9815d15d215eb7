"""Tiny random checkpoints with the real architectures and file layouts, built offline in
seconds, for tests and smoke runs on machines without real weights or a GPU.

    python -m deployments.tiny_models layout-transformers DIR
    python -m deployments.tiny_models layout-paddle DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

from deployments.labels import PP_DOCLAYOUT_V2_LABELS, V1_THRESHOLDS

# Class -> reading-order embedding group, as in the released PP-DocLayoutV2 config.
_CLASS_ORDER = [4, 2, 14, 1, 5, 7, 8, 6, 11, 11, 9, 13, 10, 10, 1, 2, 3, 0, 2, 2, 12, 1, 2, 15, 6]
TINY_QUERIES = 30


def build_tiny_layout_transformers(out_dir: str | Path, seed: int = 0) -> Path:
    """A ~250k-parameter ``PPDocLayoutV2ForObjectDetection`` (HGNetV2 backbone, RT-DETR decoder,
    reading-order head) saved as config.json + model.safetensors."""
    import torch
    from transformers import PPDocLayoutV2Config, PPDocLayoutV2ForObjectDetection

    torch.manual_seed(seed)
    backbone = {
        "model_type": "hgnet_v2", "arch": "L", "return_idx": [1, 2, 3], "freeze_stem_only": True, "freeze_at": 0,
        "freeze_norm": True, "hidden_sizes": [32] * 4, "stem_channels": [3, 16, 16],
        "stage_in_channels": [16, 32, 32, 32], "stage_mid_channels": [16] * 4, "stage_out_channels": [32] * 4,
        "stage_num_blocks": [1] * 4, "stage_numb_of_layers": [2] * 4, "lr_mult_list": [0, 0.05, 0.05, 0.05, 0.05],
        "out_features": ["stage2", "stage3", "stage4"],
    }
    reading_order = {"hidden_size": 16, "num_attention_heads": 2, "intermediate_size": 16, "num_hidden_layers": 1,
                     "coordinate_size": 6, "shape_size": 4, "global_pointer_head_size": 8}
    config = PPDocLayoutV2Config(
        backbone_config=backbone, reading_order_config=reading_order, encoder_hidden_dim=32,
        encoder_in_channels=[32, 32, 32], encoder_ffn_dim=16, encoder_attention_heads=2, d_model=32,
        num_queries=TINY_QUERIES, decoder_in_channels=[32, 32, 32], decoder_ffn_dim=16, decoder_layers=1,
        decoder_attention_heads=2, num_denoising=0, id2label=dict(enumerate(PP_DOCLAYOUT_V2_LABELS)), num_labels=25,
        class_thresholds=[V1_THRESHOLDS[i] for i in range(25)], class_order=_CLASS_ORDER)
    model = PPDocLayoutV2ForObjectDetection(config).eval()
    # The library's initialisation (zeroed box heads, prior-probability biases) makes every query
    # identical; spread the weights so the tiny model predicts varied boxes, classes and orders.
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            param.copy_(torch.randn(param.shape, generator=generator) * 0.3)
    out = Path(out_dir)
    model.save_pretrained(out)
    return out


def build_tiny_layout_paddle(out_dir: str | Path, seed: int = 0) -> Path:
    """A tiny Paddle inference model with PP-DocLayoutV2's I/O contract: inputs ``im_shape``,
    ``image`` (N, 3, 800, 800), ``scale_factor``; outputs ``[N*Q, 7]`` rows
    (cls, score, x1, y1, x2, y2, order) in page pixels and per-image counts; plus inference.yml."""
    import paddle
    import yaml

    paddle.seed(seed)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = _tiny_paddle_layer(paddle)
    spec = [paddle.static.InputSpec([None, 2], "float32", "im_shape"),
            paddle.static.InputSpec([None, 3, 800, 800], "float32", "image"),
            paddle.static.InputSpec([None, 2], "float32", "scale_factor")]
    paddle.jit.save(model, str(out / "inference"), input_spec=spec)
    yaml.safe_dump({
        "Global": {"model_name": "PP-DocLayoutV2"},
        "Preprocess": [{"type": "Resize", "target_size": [800, 800], "keep_ratio": False, "interp": 2},
                       {"type": "NormalizeImage", "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0], "is_scale": True},
                       {"type": "Permute"}],
        "label_list": list(PP_DOCLAYOUT_V2_LABELS), "draw_threshold": 0.5,
    }, open(out / "inference.yml", "w"))
    return out


def _tiny_paddle_layer(paddle):
    nn, F = paddle.nn, paddle.nn.functional
    queries, classes = TINY_QUERIES, len(PP_DOCLAYOUT_V2_LABELS)

    class TinyLayout(nn.Layer):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2D(3, 8, 8, stride=8)
            self.head = nn.Linear(8 * 4 * 4, queries * (classes + 5))

        def forward(self, im_shape, image, scale_factor):
            x = F.adaptive_avg_pool2d(F.relu(self.conv(image)), 4)
            x = self.head(x.flatten(1)).reshape([-1, queries, classes + 5])
            logits, box, order = x[:, :, :classes], F.sigmoid(x[:, :, classes:classes + 4]), x[:, :, classes + 4]
            score, cls = F.sigmoid(logits.max(-1)), logits.argmax(-1).astype("float32")
            page = im_shape / scale_factor  # (h, w) of the original page
            h, w = page[:, 0:1], page[:, 1:2]
            cx, cy, bw, bh = box[:, :, 0], box[:, :, 1], box[:, :, 2], box[:, :, 3]
            rank = paddle.argsort(paddle.argsort(order, axis=1), axis=1).astype("float32") + 1
            rows = paddle.stack([cls, score, (cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w,
                                 (cy + bh / 2) * h, rank], axis=-1).reshape([-1, 7])
            return rows, paddle.full([paddle.shape(image)[0]], queries, dtype="int32")

    model = TinyLayout()
    model.eval()
    return model


def main(argv=None) -> int:
    argv = argv if argv is not None else sys.argv[1:]
    builders = {"layout-transformers": build_tiny_layout_transformers, "layout-paddle": build_tiny_layout_paddle}
    if len(argv) != 2 or argv[0] not in builders:
        print(f"usage: python -m deployments.tiny_models {{{'|'.join(builders)}}} DIR", file=sys.stderr)
        return 2
    print(builders[argv[0]](argv[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
