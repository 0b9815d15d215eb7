"""Tiny random checkpoints with the real architectures and file layouts, built offline in
seconds, for tests and smoke runs on machines without real weights or a GPU.

    python -m devtools.tiny_models layout-transformers DIR       (PP-DocLayoutV2)
    python -m devtools.tiny_models layout-paddle DIR
    python -m devtools.tiny_models layout-v3-transformers DIR    (PP-DocLayoutV3: boxes and masks)
    python -m devtools.tiny_models layout-v3-paddle DIR
    python -m devtools.tiny_models vlm DIR        (or vlm-fixed: always answers "Tiny OCR works.";
                                                   vlm-fixed-1.6: the same with the 1.5/1.6 template)
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
    backbone = _tiny_backbone(stages=[2, 3, 4])
    reading_order = {"hidden_size": 16, "num_attention_heads": 2, "intermediate_size": 16, "num_hidden_layers": 1,
                     "coordinate_size": 6, "shape_size": 4, "global_pointer_head_size": 8}
    config = PPDocLayoutV2Config(
        backbone_config=backbone, reading_order_config=reading_order, encoder_hidden_dim=32,
        encoder_in_channels=[32, 32, 32], encoder_ffn_dim=16, encoder_attention_heads=2, d_model=32,
        num_queries=TINY_QUERIES, decoder_in_channels=[32, 32, 32], decoder_ffn_dim=16, decoder_layers=1,
        decoder_attention_heads=2, num_denoising=0, id2label=dict(enumerate(PP_DOCLAYOUT_V2_LABELS)), num_labels=25,
        class_thresholds=[V1_THRESHOLDS[i] for i in range(25)], class_order=_CLASS_ORDER)
    model = PPDocLayoutV2ForObjectDetection(config).eval()
    _spread_weights(model, seed)
    out = Path(out_dir)
    model.save_pretrained(out)
    return out


def build_tiny_layout_v3_transformers(out_dir: str | Path, seed: int = 0) -> Path:
    """A ~250k-parameter ``PPDocLayoutV3ForObjectDetection`` (HGNetV2 backbone whose stride-4 stage
    feeds the mask head, RT-DETR decoder with the global-pointer reading order, a 200x200 mask per
    query at an 800x800 input) saved as config.json + model.safetensors."""
    import torch
    from transformers import PPDocLayoutV3Config, PPDocLayoutV3ForObjectDetection

    torch.manual_seed(seed)
    config = PPDocLayoutV3Config(
        backbone_config=_tiny_backbone(stages=[1, 2, 3, 4]), encoder_hidden_dim=32, encoder_in_channels=[32, 32, 32],
        encoder_ffn_dim=16, encoder_attention_heads=2, d_model=32, num_queries=TINY_QUERIES,
        decoder_in_channels=[32, 32, 32], decoder_ffn_dim=16, decoder_layers=1, decoder_attention_heads=2,
        num_denoising=0, x4_feat_dim=32, mask_feature_channels=[8, 8], num_prototypes=8, global_pointer_head_size=8,
        id2label=dict(enumerate(PP_DOCLAYOUT_V2_LABELS)), num_labels=25)
    model = PPDocLayoutV3ForObjectDetection(config).eval()
    _spread_weights(model, seed)
    _center_mask_prototypes(model)
    out = Path(out_dir)
    model.save_pretrained(out)
    return out


def _tiny_backbone(stages: list[int]) -> dict:
    """A 4-stage HGNetV2 with 32 channels everywhere, returning ``stages`` (1 is stride 4)."""
    return {
        "model_type": "hgnet_v2", "arch": "L", "return_idx": [s - 1 for s in stages], "freeze_stem_only": True,
        "freeze_at": 0, "freeze_norm": True, "hidden_sizes": [32] * 4, "stem_channels": [3, 16, 16],
        "stage_in_channels": [16, 32, 32, 32], "stage_mid_channels": [16] * 4, "stage_out_channels": [32] * 4,
        "stage_num_blocks": [1] * 4, "stage_numb_of_layers": [2] * 4, "lr_mult_list": [0, 0.05, 0.05, 0.05, 0.05],
        "out_features": [f"stage{s}" for s in stages],
    }


def _spread_weights(model, seed: int) -> None:
    # The library's initialisation (zeroed box heads, prior-probability biases) makes every query
    # identical; spread the weights so the tiny model predicts varied boxes, classes and orders.
    import torch

    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            param.copy_(torch.randn(param.shape, generator=generator) * 0.3)


def _center_mask_prototypes(model) -> None:
    """Shift the mask prototypes to zero mean on a small synthetic page (a banner and two columns
    of text lines). With random weights they sit far below zero, so a mask logit is positive on a
    few scattered pixels only; centred, about half of a page is inside a mask, in shapes that
    follow the page's content and are not rectangles. A 256x256 input keeps this a fraction of a
    second."""
    import torch

    page = torch.ones(1, 3, 256, 256)
    page[:, :, 20:38, 20:236] = 0.15
    for top in range(64, 224, 10):
        page[:, :, top:top + 4, 20:120] = 0.0
        page[:, :, top:top + 4, 136:236] = 0.0
    conv = model.model.encoder.encoder_mask_output.conv
    seen = []
    hook = conv.register_forward_hook(lambda module, args, output: seen.append(output))
    with torch.inference_mode():
        model(pixel_values=page)
    hook.remove()
    with torch.no_grad():
        conv.bias -= seen[0].mean((0, 2, 3))


def build_tiny_layout_paddle(out_dir: str | Path, seed: int = 0) -> Path:
    """A tiny Paddle inference model with PP-DocLayoutV2's I/O contract: inputs ``im_shape``,
    ``image`` (N, 3, 800, 800), ``scale_factor``; outputs ``[N*Q, 7]`` rows
    (cls, score, x1, y1, x2, y2, order) in page pixels and per-image counts; plus inference.yml."""
    return _save_tiny_paddle(out_dir, seed, "PP-DocLayoutV2")


def build_tiny_layout_v3_paddle(out_dir: str | Path, seed: int = 0) -> Path:
    """A tiny Paddle inference model with PP-DocLayoutV3's I/O contract: V2's inputs (PaddleX feeds
    both models ``im_shape``, ``image``, ``scale_factor``) and outputs, plus ``[N*Q, 200, 200]``
    int32 0/1 masks over the 800x800 input at a quarter of its resolution. Each mask is drawn from
    its box and is no rectangle: even rows an L (the box less its top-right quarter), odd rows a
    parallelogram leaning right, so polygons from the masks differ from the boxes."""
    return _save_tiny_paddle(out_dir, seed, "PP-DocLayoutV3")


def _save_tiny_paddle(out_dir: str | Path, seed: int, model_name: str) -> Path:
    import paddle
    import yaml

    paddle.seed(seed)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = _tiny_paddle_layer(paddle, masks=model_name == "PP-DocLayoutV3")
    spec = [paddle.static.InputSpec([None, 2], "float32", "im_shape"),
            paddle.static.InputSpec([None, 3, 800, 800], "float32", "image"),
            paddle.static.InputSpec([None, 2], "float32", "scale_factor")]
    paddle.jit.save(model, str(out / "inference"), input_spec=spec)
    yaml.safe_dump({
        "Global": {"model_name": model_name},
        "Preprocess": [{"type": "Resize", "target_size": [800, 800], "keep_ratio": False, "interp": 2},
                       {"type": "NormalizeImage", "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0], "is_scale": True},
                       {"type": "Permute"}],
        "label_list": list(PP_DOCLAYOUT_V2_LABELS), "draw_threshold": 0.5,
    }, open(out / "inference.yml", "w"))
    return out


def _tiny_paddle_layer(paddle, masks: bool = False):
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

    class TinyMaskLayout(TinyLayout):
        def forward(self, im_shape, image, scale_factor):
            rows, counts = super().forward(im_shape, image, scale_factor)
            return rows, counts, _box_masks(paddle, rows, scale_factor, queries)

    model = TinyMaskLayout() if masks else TinyLayout()
    model.eval()
    return model


def _box_masks(paddle, rows, scale_factor, queries: int, side: int = 200):
    """[N*Q, side, side] int32 masks over the 800x800 input at 1/4 scale, one per row, from its box."""
    def edge(col, axis):  # page pixels -> mask pixels: * (800 / page side) / 4
        return (rows[:, col] * paddle.repeat_interleave(scale_factor[:, axis], queries) / 4).reshape([-1, 1, 1])

    x1, y1, x2, y2 = edge(2, 1), edge(3, 0), edge(4, 1), edge(5, 0)
    xs = paddle.arange(side, dtype="float32").reshape([1, 1, side]) + 0.5
    ys = paddle.arange(side, dtype="float32").reshape([1, side, 1]) + 0.5
    rows_in = ((ys >= y1) & (ys < y2)).astype("float32")
    box = ((xs >= x1) & (xs < x2)).astype("float32") * rows_in
    notch = ((xs >= (x1 + x2) / 2) & (ys < (y1 + y2) / 2)).astype("float32")
    lean = (ys - y1) / (y2 - y1 + 1e-3) * (x2 - x1) / 3  # 0 at the top edge, a third of the width at the bottom
    slanted = ((xs >= x1 + lean) & (xs < x2 - (x2 - x1) / 3 + lean)).astype("float32") * rows_in
    odd = (paddle.arange(paddle.shape(rows)[0]) % 2).astype("float32").reshape([-1, 1, 1])
    return (odd * slanted + (1 - odd) * box * (1 - notch)).astype("int32")




# --- PaddleOCR-VL ------------------------------------------------------------------------------
FIXED_ANSWER = "Tiny OCR works."
VLM_SPECIAL_TOKENS = ["<unk>", "<s>", "</s>", "<|begin_of_sentence|>", "<|end_of_sentence|>",
                      "<|IMAGE_PLACEHOLDER|>", "<|IMAGE_START|>", "<|IMAGE_END|>", "<|video_pad|>"]
VLM_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] == 'user' %}<|begin_of_sentence|>User: "
    "{% for c in message['content'] %}{% if c['type'] == 'image' %}<|IMAGE_START|><|IMAGE_PLACEHOLDER|><|IMAGE_END|>"
    "{% endif %}{% endfor %}{% for c in message['content'] %}{% if c['type'] == 'text' %}{{ c['text'] }}{% endif %}"
    "{% endfor %}{{ '\\n' }}{% endif %}{% endfor %}{% if add_generation_prompt %}Assistant: {% endif %}")
#: 1.5 and 1.6 end the user turn with "Assistant:" and a newline (PaddleX's genai templates).
VLM_CHAT_TEMPLATE_15 = VLM_CHAT_TEMPLATE.replace("Assistant: {% endif %}", "Assistant:{{ '\\n' }}{% endif %}")
_CORPUS = ["User: OCR:\nAssistant: Table Recognition: Formula Recognition: Chart Recognition: Seal Recognition:",
           "The quick brown fox jumps over the lazy dog. 0123456789 <fcel> <nl> $ \\frac{a}{b}"]


def _vlm_tokenizer(extra_text: str = ""):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=384, special_tokens=VLM_SPECIAL_TOKENS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(_CORPUS + [extra_text], trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<unk>", bos_token="<s>",
                                   eos_token="</s>", image_token="<|IMAGE_PLACEHOLDER|>")


def build_tiny_vlm(out_dir: str | Path, seed: int = 0, answer: str | None = None, loop: bool = False,
                   version: str = "v1", template: bool = True) -> Path:
    """A ~280k-parameter PaddleOCR-VL (SigLIP-style vision tower, projector, ERNIE-4.5 text model
    with M-RoPE) with its tokenizer, image processor (16 image tokens at most) and chat template,
    saved in the hub layout vLLM loads. With ``answer``, greedy decoding emits exactly that text
    for any image and prompt (the "fixed-answer" checkpoint); with ``loop`` too, it repeats the
    answer forever instead of ending (a degenerate repetition loop, for the early-stop rule).
    ``version``: the pipeline whose chat template it carries (v1, or 1.5/1.6: the same config, the
    assistant turn starting "Assistant:\\n"); without ``template`` it has none (a fine-tuning
    output), and the fixed answer follows the pipeline's template."""
    import torch
    from transformers import PaddleOCRVLConfig, PaddleOCRVLForConditionalGeneration, PaddleOCRVLProcessor
    from transformers.models.paddleocr_vl.image_processing_pil_paddleocr_vl import PaddleOCRVLImageProcessorPil

    tokenizer = _vlm_tokenizer(answer or "")
    ids = {s: tokenizer.convert_tokens_to_ids(s) for s in VLM_SPECIAL_TOKENS}
    text = dict(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                num_attention_heads=2, num_key_value_heads=1, head_dim=32, max_position_embeddings=4096,
                rope_parameters={"rope_type": "default", "rope_theta": 500000.0, "mrope_section": [4, 6, 6]},
                tie_word_embeddings=False, pad_token_id=ids["<unk>"], bos_token_id=ids["<s>"], eos_token_id=ids["</s>"])
    vision = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=1, num_attention_heads=2, patch_size=14,
                  spatial_merge_size=2, image_size=56)
    config = PaddleOCRVLConfig(text_config=text, vision_config=vision, image_token_id=ids["<|IMAGE_PLACEHOLDER|>"],
                               video_token_id=ids["<|video_pad|>"], vision_start_token_id=ids["<|IMAGE_START|>"],
                               vision_end_token_id=ids["<|IMAGE_END|>"], tie_word_embeddings=False)
    torch.manual_seed(seed)
    model = PaddleOCRVLForConditionalGeneration(config).eval()
    if answer is not None:
        _fix_answer(model, tokenizer, answer, loop, _prompt_end(version))
    else:
        # Random logits are nearly uniform; sharpen them so greedy decoding does not flip on the
        # rounding differences between engines, kernels and batch sizes.
        with torch.no_grad():
            model.lm_head.weight.mul_(50.0)
    out = Path(out_dir)
    model.save_pretrained(out)
    processor = PaddleOCRVLProcessor(
        image_processor=PaddleOCRVLImageProcessorPil(
            min_pixels=28 * 28, max_pixels=28 * 28 * 16, size={"shortest_edge": 28 * 28, "longest_edge": 28 * 28 * 16},
            patch_size=14, merge_size=2, temporal_patch_size=1, image_mean=[0.5] * 3, image_std=[0.5] * 3),
        tokenizer=tokenizer, chat_template=(VLM_CHAT_TEMPLATE if version == "v1" else VLM_CHAT_TEMPLATE_15)
        if template else None)
    processor.save_pretrained(out)
    return out


def _prompt_end(version: str) -> str:
    from deployments.pipelines import pipeline_for

    return "\n" + pipeline_for(version).assistant_prefix


def _fix_answer(model, tokenizer, answer: str, loop: bool = False, prompt_end: str = "\nAssistant: ") -> None:
    """Make greedy decoding follow the chain  last prompt token → answer tokens → </s>.

    With every o_proj and down_proj zeroed the residual stream at the last position is that
    token's embedding; one-hot embeddings and ``lm_head[next, slot] = 10`` then pick the next token.
    """
    import torch

    prompt_end = tokenizer.encode(prompt_end, add_special_tokens=False)[-1]
    answer_ids = tokenizer.encode(answer, add_special_tokens=False)
    chain = [prompt_end] + answer_ids + ([answer_ids[0]] if loop else [tokenizer.eos_token_id])
    hidden = model.config.text_config.hidden_size
    if len(set(chain[: len(chain) - loop])) != len(chain) - loop or len(chain) > hidden:
        raise ValueError(f"answer {answer!r} needs distinct tokens (at most {hidden - 2}); got {chain}")
    lm = model.model.language_model
    with torch.no_grad():
        for layer in lm.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        lm.norm.weight.fill_(1.0)
        model.lm_head.weight.zero_()
        for slot, (token, nxt) in enumerate(zip(chain, chain[1:])):
            lm.embed_tokens.weight[token] = torch.nn.functional.one_hot(torch.tensor(slot), hidden).float()
            model.lm_head.weight[nxt, slot] = 10.0  # in a loop the last edge leads back to the first token


def main(argv=None) -> int:
    argv = argv if argv is not None else sys.argv[1:]
    builders = {"layout-transformers": build_tiny_layout_transformers, "layout-paddle": build_tiny_layout_paddle,
                "layout-v3-transformers": build_tiny_layout_v3_transformers,
                "layout-v3-paddle": build_tiny_layout_v3_paddle,
                "vlm": build_tiny_vlm, "vlm-fixed": lambda d: build_tiny_vlm(d, answer=FIXED_ANSWER),
                "vlm-loop": lambda d: build_tiny_vlm(d, answer=FIXED_ANSWER, loop=True),
                "vlm-fixed-1.6": lambda d: build_tiny_vlm(d, answer=FIXED_ANSWER, version="v1.6")}
    if len(argv) != 2 or argv[0] not in builders:
        print(f"usage: python -m devtools.tiny_models {{{'|'.join(builders)}}} DIR", file=sys.stderr)
        return 2
    print(builders[argv[0]](argv[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
