"""Pixel limits reach the image processor in both of vLLM's processor modes.

The engine sends each crop's (min_pixels, max_pixels) as ``mm_processor_kwargs``. vLLM counts the
image placeholder tokens itself (``PaddleOCRVLProcessingInfo.get_num_image_tokens``) while the HF
processor resizes the crop; the two must agree, and both must honour the limits:

- ``trust_remote_code`` off: transformers' native ``PaddleOCRVLProcessor`` (limits in ``size``
  as shortest_edge/longest_edge, or the deprecated ``min_pixels``/``max_pixels`` kwargs).
- ``trust_remote_code`` on (the official recipe): the hub's remote processor, which reads only
  ``min_pixels``/``max_pixels`` given when it is built (vLLM builds one per value pair) and
  ignores ``size``. It cannot be downloaded here; ``HUB_LIKE_*`` below is a stand-in with the
  same interface and behaviour, loaded through ``auto_map`` as the real one is.

vLLM's multimodal processor is built without starting an engine (seconds, no weights loaded).
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from deployments.recognizer.options import PIXEL_KINDS, PIXEL_PROFILES, PlanOptions

pytestmark = pytest.mark.integration

from deployments.recognizer.engines.vllm_engine import pixel_kwargs


def old_size_form(min_pixels: int, max_pixels: int) -> dict:
    """What the engine sent before: read by the native processor only."""
    return {"size": {"shortest_edge": min_pixels, "longest_edge": max_pixels}}


PROMPT = "<|begin_of_sentence|>User: <|IMAGE_START|><|IMAGE_PLACEHOLDER|><|IMAGE_END|>OCR:\nAssistant: "
#: Every (min_pixels, max_pixels) pair planning sends: each profile, each kind, spotting.
PAIRS = sorted({PlanOptions(pixel_profile=p).pixels_for(k) for p in PIXEL_PROFILES for k in (*PIXEL_KINDS, "spotting")})
#: (height, width): below every min_pixels, in between (plus a thin line), above every max_pixels.
SHAPES = {"small": (30, 60), "medium": (400, 600), "line": (40, 7000), "big": (1800, 2200)}
CASES = [pytest.param(pair, shape, id=f"{pair[0]}-{pair[1]}-{name}") for pair in PAIRS for name, shape in SHAPES.items()]

HUB_LIKE_IMAGE_PROCESSOR = '''
import torch
from transformers.feature_extraction_utils import BatchFeature
from transformers.image_processing_utils import BaseImageProcessor
from vllm.model_executor.models.paddleocr_vl import smart_resize  # the hub's formula, verbatim


class HubLikeImageProcessor(BaseImageProcessor):
    """Like the hub's PaddleOCRVLImageProcessor: the limits are constructor arguments, ``size`` is
    kept only for show, and ``preprocess`` resizes with the instance's min/max_pixels whatever
    ``size`` a call passes."""

    model_input_names = ["pixel_values", "image_grid_thw"]

    def __init__(self, min_pixels=784, max_pixels=12544, patch_size=14, temporal_patch_size=1, merge_size=2,
                 **kwargs):
        super().__init__(**kwargs)
        self.min_pixels, self.max_pixels = min_pixels, max_pixels
        self.patch_size, self.temporal_patch_size, self.merge_size = patch_size, temporal_patch_size, merge_size
        self.size = {"min_pixels": min_pixels, "max_pixels": max_pixels}  # "not used", as on the hub

    def preprocess(self, images, size=None, return_tensors=None, **kwargs):
        images = images if isinstance(images, (list, tuple)) else [images]
        grids = []
        for image in images:
            width, height = image.size if hasattr(image, "size") and not hasattr(image, "shape") else (
                image.shape[1], image.shape[0])
            h, w = smart_resize(height, width, factor=self.patch_size * self.merge_size,
                                min_pixels=self.min_pixels, max_pixels=self.max_pixels)
            grids.append([1, h // self.patch_size, w // self.patch_size])
        patches = sum(t * h * w for t, h, w in grids)
        pixel_values = torch.zeros(patches, 3, self.patch_size, self.patch_size)
        return BatchFeature({"pixel_values": pixel_values, "image_grid_thw": torch.tensor(grids)},
                            tensor_type=return_tensors)
'''

HUB_LIKE_PROCESSOR = '''
from transformers.feature_extraction_utils import BatchFeature
from transformers.processing_utils import ProcessingKwargs, ProcessorMixin, Unpack


class HubLikeProcessorKwargs(ProcessingKwargs, total=False):
    _defaults = {"text_kwargs": {"padding": False}}


class HubLikeProcessor(ProcessorMixin):
    """Like the hub's PaddleOCRVLProcessor: calls the image processor without any image kwargs."""

    image_processor_class = "AutoImageProcessor"
    tokenizer_class = "AutoTokenizer"

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        self.image_token = tokenizer.image_token
        super().__init__(image_processor, tokenizer, chat_template=chat_template)

    def __call__(self, images=None, text=None, **kwargs: Unpack[HubLikeProcessorKwargs]):
        output_kwargs = self._merge_kwargs(HubLikeProcessorKwargs, tokenizer_init_kwargs=self.tokenizer.init_kwargs,
                                           **kwargs)
        image_inputs, grids = {}, []
        if images is not None:
            image_inputs = self.image_processor(images=images, return_tensors="pt")
            grids = image_inputs["image_grid_thw"]
        text = list(text) if isinstance(text, (list, tuple)) else [text]
        index = 0
        for i in range(len(text)):
            while self.image_token in text[i]:
                n = int(grids[index].prod()) // self.image_processor.merge_size ** 2
                text[i] = text[i].replace(self.image_token, "<|placeholder|>" * n, 1)
                index += 1
            text[i] = text[i].replace("<|placeholder|>", self.image_token)
        text_inputs = self.tokenizer(text, **output_kwargs["text_kwargs"])
        return BatchFeature(data={**text_inputs, **image_inputs})
'''


def hub_like_checkpoint(tiny: Path, out: Path) -> Path:
    """The tiny checkpoint with the processor swapped for the hub-like remote one."""
    shutil.copytree(tiny, out, ignore=shutil.ignore_patterns("processor_config.json"))
    native = json.loads((tiny / "processor_config.json").read_text())["image_processor"]
    (out / "image_processing_hublike.py").write_text(HUB_LIKE_IMAGE_PROCESSOR)
    (out / "processing_hublike.py").write_text(HUB_LIKE_PROCESSOR)
    auto_map = {"AutoImageProcessor": "image_processing_hublike.HubLikeImageProcessor",
                "AutoProcessor": "processing_hublike.HubLikeProcessor"}
    (out / "preprocessor_config.json").write_text(json.dumps({
        "auto_map": auto_map, "image_processor_type": "HubLikeImageProcessor", "processor_class": "HubLikeProcessor",
        "min_pixels": native["size"]["shortest_edge"], "max_pixels": native["size"]["longest_edge"],
        "patch_size": 14, "merge_size": 2, "temporal_patch_size": 1}))
    (out / "processor_config.json").write_text(json.dumps({"auto_map": auto_map, "processor_class": "HubLikeProcessor"}))
    return out


def vllm_processor(model: Path, trust_remote_code: bool):
    from vllm.config import ModelConfig
    from vllm.multimodal import MULTIMODAL_REGISTRY

    config = ModelConfig(model=str(model), dtype="float32", max_model_len=4096, mm_processor_cache_gb=0,
                         trust_remote_code=trust_remote_code)
    return MULTIMODAL_REGISTRY.create_processor(config)


@pytest.fixture(scope="module")
def native(tiny_vlm):
    return vllm_processor(tiny_vlm, trust_remote_code=False)


@pytest.fixture(scope="module")
def remote(tiny_vlm, tmp_path_factory):
    processor = vllm_processor(hub_like_checkpoint(tiny_vlm, tmp_path_factory.mktemp("hub-like") / "ckpt"),
                               trust_remote_code=True)
    assert type(processor.info.get_hf_processor()).__name__ == "HubLikeProcessor"
    return processor


@pytest.fixture(scope="module")
def hf_processor(tiny_vlm):
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(tiny_vlm)


def crop(shape: tuple[int, int]) -> Image.Image:
    return Image.fromarray(np.random.default_rng(sum(shape)).integers(0, 256, (*shape, 3), dtype=np.uint8))


def hf_tokens(hf_processor, image: Image.Image, pair: tuple[int, int]) -> int:
    """Image tokens transformers' processor gives the crop under these limits (no vLLM involved)."""
    lo, hi = pair
    out = hf_processor(images=image, text=PROMPT, size={"shortest_edge": lo, "longest_edge": hi})
    merge = hf_processor.image_processor.merge_size
    n = int(out["image_grid_thw"][0].prod()) // merge**2
    assert list(out["input_ids"][0]).count(hf_processor.image_token_id) == n
    return n


def vllm_tokens(processor, image: Image.Image, kwargs: dict) -> tuple[int, int]:
    """(placeholders vLLM writes into the prompt, tokens of the grid its HF processor call returned)."""
    image_token = processor.info.get_hf_config().image_token_id
    out = processor(PROMPT, processor.info.parse_mm_data({"image": image}), hf_processor_mm_kwargs=kwargs)
    grid = out["mm_kwargs"]["image"][0]["image_grid_thw"].data
    merge = processor.info.get_hf_config().vision_config.spatial_merge_size
    return out["prompt_token_ids"].count(image_token), int(grid.prod()) // merge**2


def checkpoint_default(hf_processor, image: Image.Image) -> int:
    size = hf_processor.image_processor.size
    return hf_tokens(hf_processor, image, (size["shortest_edge"], size["longest_edge"]))


def test_pairs_cover_every_profile():
    assert set(PIXEL_PROFILES.values()) <= set(PAIRS) and len(PAIRS) >= 3


@pytest.mark.parametrize(("pair", "shape"), CASES)
def test_native_processor_counts_match(native, hf_processor, pair, shape):
    image = crop(shape)
    expected = hf_tokens(hf_processor, image, pair)
    assert expected != checkpoint_default(hf_processor, image)  # the limits matter for this crop
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)  # no deprecated kwargs reach the native processor
        assert vllm_tokens(native, image, pixel_kwargs(*pair, remote_code=False)) == (expected, expected)


@pytest.mark.parametrize(("pair", "shape"), CASES)
def test_remote_processor_counts_match(remote, hf_processor, pair, shape):
    image = crop(shape)
    expected = hf_tokens(hf_processor, image, pair)
    assert vllm_tokens(remote, image, pixel_kwargs(*pair, remote_code=True)) == (expected, expected)
    # The old form is silently ignored there: both sides fall back to the checkpoint's limits.
    if shape == SHAPES["line"]:  # which (16 tokens at most) shrink the line to no token at all
        with pytest.raises(RuntimeError, match="found 0 prompt placeholders"):
            vllm_tokens(remote, image, old_size_form(*pair))
        return
    in_prompt, in_grid = vllm_tokens(remote, image, old_size_form(*pair))
    assert in_prompt == in_grid != expected
