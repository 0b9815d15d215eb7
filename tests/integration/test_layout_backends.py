"""The layout stage with real backends: transformers and PaddleX on tiny checkpoints built by the
suite, and the lite backend's real PP-Layout CDLA weights on a generated paper."""

from __future__ import annotations

import numpy as np
import pytest

from deployments.datamodel import PageError, PageImage
from deployments.layout.backends import LayoutLoadError, create_backend
from deployments.layout.config import LayoutConfig
from deployments.layout.detector import LayoutDetector, choose_backend, resolve_device
from deployments.layout.options import LayoutOptions
from deployments.renderer import Renderer
from devtools.documents import PAPER_LEFT, PAPER_RIGHT, PAPER_TABLE, PAPER_TITLE, image_bytes, paper_pdf, text_pdf

pytestmark = pytest.mark.integration
EVERYTHING = LayoutOptions(threshold=0.0, nms=False)


@pytest.fixture(scope="module")
def mixed_pages() -> list[PageImage]:
    """A paper page, a text page, a landscape image, a 1-px image and a page that failed to render."""
    render = Renderer()
    pages = list(render.render(paper_pdf(), "paper")) + list(render.render(text_pdf(1), "text"))
    pages += list(render.render(image_bytes(size=(900, 400)), "wide")) + list(render.render(image_bytes(size=(1, 1)), "dot"))
    failed = PageImage("bad", 0, 1, np.zeros((0, 0, 3), np.uint8), 0.0, PageError("render", "page_render_failed", "x"))
    return pages + [failed]


def _assert_same(ours, theirs):
    """Equal boxes; scores may differ in the last float digits when batch sizes differ."""
    assert [(b["label"], b["coordinate"], b["order"]) for b in ours] == [
        (b["label"], list(b["coordinate"]), b["order"]) for b in theirs]
    assert [b["score"] for b in ours] == pytest.approx([b["score"] for b in theirs], abs=1e-5)


def _check_boxes(pages, results):
    assert len(results) == len(pages)
    for page, boxes in zip(pages, results):
        orders = [b.order for b in boxes if b.order is not None]
        assert orders == list(range(1, len(orders) + 1))
        for b in boxes:
            x1, y1, x2, y2 = b.coordinate
            assert 0 <= x1 < x2 <= page.width and 0 <= y1 < y2 <= page.height


@pytest.fixture(scope="module")
def hf_detector(tiny_layout_hf):
    return LayoutDetector(LayoutConfig(backend="transformers", model=str(tiny_layout_hf), batch_size=2))


@pytest.fixture(scope="module")
def paddle_detector(tiny_layout_paddle):
    return LayoutDetector(LayoutConfig(backend="paddlex", model=str(tiny_layout_paddle), batch_size=3))


@pytest.mark.parametrize("name", ["hf_detector", "paddle_detector"])
def test_tiny_backends_on_mixed_batches_are_deterministic(name, mixed_pages, request):
    detector = request.getfixturevalue(name)
    first = detector.detect(mixed_pages, [EVERYTHING] * len(mixed_pages))
    _check_boxes(mixed_pages, first)
    assert any(first[:4]) and first[-1] == []
    again = detector.detect(mixed_pages, [EVERYTHING] * len(mixed_pages))
    assert [[b.to_json() for b in page] for page in first] == [[b.to_json() for b in page] for page in again]


@pytest.mark.parametrize("name", ["hf_detector", "paddle_detector"])
def test_options_apply_per_page(name, mixed_pages, request):
    detector = request.getfixturevalue(name)
    pages = mixed_pages[:2]
    results = detector.detect(pages, [LayoutOptions(threshold=1.0), EVERYTHING])
    alone = detector.detect(pages[1:], [EVERYTHING])[0]
    assert results[0] == [] and len(alone) > 0
    _assert_same([b.to_json() for b in results[1]], [b.to_json() for b in alone])


def test_paddlex_backend_equals_paddlex_own_post_processing(paddle_detector, mixed_pages):
    """Raw rows through our post-processing == PaddleX's predictor end to end, same options."""
    model = paddle_detector.backend.model
    pages = mixed_pages[:3]
    options = LayoutOptions()  # the v1 defaults: per-class thresholds, NMS, merge modes
    ours = paddle_detector.detect(pages, [options] * 3)
    theirs = list(model.predict([np.ascontiguousarray(p.image[..., ::-1]) for p in pages],
                                threshold=dict(options.threshold), layout_nms=True, layout_unclip_ratio=[1.0, 1.0],
                                layout_merge_bboxes_mode=dict(options.merge_bboxes_mode), filter_overlap_boxes=False))
    assert len(ours) == len(theirs) == 3
    for page, result in zip(ours, theirs):
        _assert_same([b.to_json() for b in page], result["boxes"])


def _nearest_same_class(row, rows):
    """L-infinity distance in px from ``row`` to the nearest box of its class in ``rows``, and that box's order."""
    same = rows[rows[:, 0] == row[0]]
    if not len(same):
        return np.inf, None
    dist = np.abs(same[:, 2:6] - row[2:6]).max(1)
    return dist.min(), same[dist.argmin(), 6]


def test_transformers_layout_defaults_to_fp32_and_bf16_moves_boxes_and_order(tiny_layout_hf, mixed_pages,
                                                                              monkeypatch):
    """Why ``dtype: auto`` is fp32 for the layout (as PaddleX runs it): bf16 moves every box and
    reorders the page. Raw rows (no threshold, no NMS) of the transformers backend on the generated
    paper, fp32 vs bf16 on CPU. The tiny checkpoint's random weights amplify the drift (the real
    model's reading-order coordinates move in bf16 steps of 2-4 of 1000); measured with seed 0:
    every fp32 box is 3.1-381 px (median 7.5) from the nearest bf16 box of its class (one fp32 class
    has no bf16 box at all), and of the 13 boxes matched within 10 px, 12 change order rank and 23
    of 78 pairs swap."""
    import torch

    page = mixed_pages[0].image  # the paper page

    def rows(dtype):
        backend = create_backend("transformers", LayoutConfig(backend="transformers", model=str(tiny_layout_hf),
                                                              dtype=dtype), "cpu")
        return backend.dtype, backend.predict([page], 0.0)[0]

    (auto_dtype, auto), (fp32_dtype, fp32) = rows("auto"), rows("float32")
    # torch's CPU grid_sample (2.13) reads garbage for a bf16 input with channels-last strides, which
    # the decoder's deformable attention passes, so bf16 rows change from call to call on CPU; a
    # contiguous copy gives the bf16 rounding alone, deterministically (fp32 rows are unaffected).
    grid_sample = torch.nn.functional.grid_sample
    monkeypatch.setattr(torch.nn.functional, "grid_sample",
                        lambda input, grid, *args, **kwargs: grid_sample(input.contiguous(), grid, *args, **kwargs))
    (bf16_dtype, bf16), (_, again) = rows("bfloat16"), rows("bfloat16")
    np.testing.assert_array_equal(bf16, again)
    assert auto_dtype is fp32_dtype is torch.float32 and bf16_dtype is torch.bfloat16
    np.testing.assert_array_equal(auto, fp32)  # auto is fp32, bit for bit
    assert len(fp32) and len(bf16)

    nearest = [_nearest_same_class(row, bf16) for row in fp32]
    moved = np.array([dist for dist, _ in nearest])
    assert moved.min() > 0 and np.median(moved) > 2, (
        f"bf16 should move every box: px to the nearest bf16 box of the class {np.round(np.sort(moved), 1)}")
    # Reading order of the boxes that bf16 kept within 10 px: fp32 rank -> bf16 rank.
    ranks = sorted({(row[6], order) for row, (dist, order) in zip(fp32, nearest) if dist <= 10})
    changed = sum(a != b for a, b in ranks)
    swapped = sum(1 for i, (a, b) in enumerate(ranks) for c, d in ranks[i + 1:] if a < c and b > d)
    assert len(ranks) >= 5 and changed and swapped, (
        f"bf16 should reorder: {changed} of {len(ranks)} matched boxes change rank, {swapped} pairs swap: {ranks}")


def _iou(a, b):
    iw = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def test_lite_detector_finds_title_columns_and_table_in_reading_order():
    detector = LayoutDetector()  # no model configured: the offline lite default
    assert detector.backend_name == "lite"
    page = next(Renderer().render(paper_pdf()))
    boxes = detector.detect([page])[0]
    scale = page.scale

    def find(label, drawn):
        target = [v * scale for v in drawn]
        hits = [b for b in boxes if b.label == label and _iou(b.coordinate, target) > 0.5]
        assert hits, f"no {label} box over {target}: {boxes}"
        return boxes.index(hits[0])

    # The title's box is the text line, narrower than the rectangle it was drawn in.
    title = next(i for i, b in enumerate(boxes) if b.label == "paragraph_title"
                 and PAPER_TITLE[1] * scale <= b.coordinate[1] and b.coordinate[3] <= PAPER_TITLE[3] * scale + 10)
    left, right, table = find("text", PAPER_LEFT), find("text", PAPER_RIGHT), find("table", PAPER_TABLE)
    assert title < left < right < table


def test_lite_detector_spreads_a_batch_over_single_threaded_sessions():
    """``cpu_workers: 2``: a batch's pages run on two sessions at once (each call waits at a
    two-party barrier, which breaks if the pages were read one after another), with the boxes one
    session finds."""
    from conftest import meeting_in_pairs

    pages = list(Renderer().render(paper_pdf())) + list(Renderer().render(text_pdf(1)))
    single = LayoutDetector(LayoutConfig(cpu_workers=1)).detect(pages)
    detector = LayoutDetector(LayoutConfig(cpu_workers=2))
    idle = detector.backend.idle
    sessions = [idle.get_nowait() for _ in range(2)]
    assert idle.empty()
    for session in sessions:
        assert session.session.session.get_session_options().intra_op_num_threads == 1
    for session in meeting_in_pairs(sessions):
        idle.put(session)
    assert detector.detect(pages) == single and all(single)


def test_auto_backend_choice_and_devices(tiny_layout_hf, tiny_layout_paddle):
    assert choose_backend(LayoutConfig())[0] == "lite"
    assert choose_backend(LayoutConfig(model=str(tiny_layout_paddle)))[0] == "paddlex"
    assert choose_backend(LayoutConfig(model=str(tiny_layout_hf)))[0] == "transformers"
    assert resolve_device("auto", 0.5) == "cpu"  # no GPU on CPU machines


def test_cuda_requested_without_gpu_fails_clearly():
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(LayoutLoadError, match="no CUDA GPU is visible"):
        LayoutDetector(LayoutConfig(backend="transformers", model="/nonexistent", device="cuda"))


def test_paddlex_on_a_gpu_with_the_cpu_paddle_build_names_the_gpu_build():
    import paddle

    from deployments.layout.backends.pdx import PaddleXLayout

    if paddle.device.is_compiled_with_cuda():
        pytest.skip("a CUDA build of paddlepaddle is installed")
    with pytest.raises(LayoutLoadError, match=r"is a CPU build.*paddlepaddle-gpu==3\.3\.1 -i https://www\.paddlepaddle"
                                              r"\.org\.cn/packages/stable/cu129/.*backend: transformers"):
        PaddleXLayout(LayoutConfig(backend="paddlex"), "cuda:0")


@pytest.mark.parametrize("backend, model, message", [
    ("transformers", "/nonexistent/layout", "does not exist; set layout.model"),
    ("paddlex", "/nonexistent/layout", "does not exist; set layout.model to a PaddleX"),
    ("transformers", "PaddlePaddle/PP-DocLayoutV2_safetensors", "huggingface-cli download"),
])
def test_missing_weights_fail_at_start_with_the_fix(backend, model, message):
    with pytest.raises(LayoutLoadError, match=message):
        LayoutDetector(LayoutConfig(backend=backend, model=model))


def test_wrong_directory_contents_are_named(tmp_path, tiny_layout_paddle):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(LayoutLoadError, match="is not a Paddle inference model"):
        LayoutDetector(LayoutConfig(backend="paddlex", model=str(tmp_path)))
    with pytest.raises(LayoutLoadError, match="has no config.json, model.safetensors|has no model.safetensors"):
        LayoutDetector(LayoutConfig(backend="transformers", model=str(tiny_layout_paddle)))
    with pytest.raises(LayoutLoadError, match="unknown layout backend 'yolo'"):
        create_backend("yolo", LayoutConfig(), "cpu")


# --- PP-DocLayoutV3 (masks) and the checks at load -----------------------------------------------
V3 = "PP-DocLayoutV3"


def _v3_backend(name, model):
    return create_backend(name, LayoutConfig(backend=name, model_name=V3, model=str(model)), "cpu")


def _check_masks(raw):
    """One uint8 0/1 mask per row over the 800x800 input at a quarter of its resolution."""
    assert raw.masks.shape == (len(raw.rows), 200, 200) and raw.masks.dtype == np.uint8
    assert set(np.unique(raw.masks)) <= {0, 1}


def _partial_inside_box(raw, page_shape):
    """Some row's mask, inside its box (at the masks' scale), is neither empty nor full: its
    polygon will not be the box."""
    sy, sx = 200 / page_shape[0], 200 / page_shape[1]
    fills = []
    for row, mask in zip(raw.rows, raw.masks):
        x1, y1, x2, y2 = (int(round(v)) for v in (row[2] * sx, row[3] * sy, row[4] * sx, row[5] * sy))
        crop = mask[max(y1, 0):max(y2, 0), max(x1, 0):max(x2, 0)]
        if crop.size:
            fills.append(crop.mean())
    return any(0 < f < 1 for f in fills)


def test_transformers_v3_backend_selects_rows_and_masks_as_transformers_does(tiny_layout_v3_hf, mixed_pages):
    """Rows, scores, order and masks == the selection of transformers' PP-DocLayoutV3
    ``post_process_object_detection`` (top-k over query x class, order ranks from the pairwise
    votes), computed here with torch ops on the model's own outputs, masks at sigmoid > 0.5."""
    import torch

    from deployments.layout.backends.hf import preprocess

    backend = _v3_backend("transformers", tiny_layout_v3_hf)
    pages = [p.image for p in mixed_pages[:3]]
    with torch.inference_mode():
        out = backend.model(pixel_values=torch.from_numpy(preprocess(pages)))
    assert out.out_masks.shape == (3, 30, 200, 200)
    num_queries, num_classes = out.logits.shape[1:]
    scores, index = torch.topk(out.logits.sigmoid().flatten(1), num_queries, dim=-1)
    labels, query = index % num_classes, index // num_classes
    order = out.order_logits.sigmoid()
    votes = order.triu(1).sum(1) + (1.0 - order.transpose(1, 2)).tril(-1).sum(1)
    pointers = votes.argsort(1)
    ranks = torch.empty_like(pointers).scatter_(1, pointers, torch.arange(num_queries).expand(3, -1))
    centre, size = out.pred_boxes.split(2, -1)
    boxes = torch.cat([centre - size / 2, centre + size / 2], -1)
    floor = scores[0, num_queries // 2].item()  # drops about half of the first page's rows

    ours = backend.predict(pages, floor)
    for i, (page, raw) in enumerate(zip(pages, ours)):
        keep = scores[i] >= floor
        scale = torch.tensor([page.shape[1], page.shape[0]] * 2)
        rows = torch.column_stack([labels[i], scores[i], boxes[i][query[i]] * scale, ranks[i][query[i]] + 1])[keep]
        assert raw.rows.shape == (int(keep.sum()), 7)
        np.testing.assert_allclose(raw.rows, rows.double().numpy(), rtol=1e-5, atol=1e-3)
        np.testing.assert_array_equal(raw.masks, (out.out_masks[i][query[i][keep]].sigmoid() > 0.5).numpy())
        _check_masks(raw)
    assert 0 < len(ours[0].rows) < num_queries
    assert _partial_inside_box(ours[0], pages[0].shape)


def test_paddlex_v3_backend_equals_what_paddlex_hands_its_post_processing(tiny_layout_v3_paddle, mixed_pages,
                                                                           monkeypatch):
    """Rows and masks == what PaddleX's own PP-DocLayoutV3 predictor (its batching of
    img_size/img/scale_factors, its runner, ``_format_output``) hands ``LayoutAnalysisProcess``."""
    backend = _v3_backend("paddlex", tiny_layout_v3_paddle)
    model = backend.model
    predictor = model._predictor  # create_model's wrapper forwards attributes to it
    handed, post_op = [], predictor.post_op

    def capture(preds, datas, **kwargs):  # copies: the post-processing rounds the boxes in place
        handed.extend({key: np.array(value) for key, value in pred.items()} for pred in preds)
        return post_op(preds, datas, **kwargs)

    monkeypatch.setattr(predictor, "post_op", capture)
    pages = [p.image for p in mixed_pages[:3]]
    results = list(model.predict([np.ascontiguousarray(p[..., ::-1]) for p in pages], threshold=0.0))
    assert len(handed) == len(results) == 3 and all("masks" in pred for pred in handed)
    floor = float(np.median(handed[0]["boxes"][:, 1]))
    for page, raw, pred in zip(pages, backend.predict(pages, floor), handed):
        keep = pred["boxes"][:, 1] >= floor
        np.testing.assert_array_equal(raw.rows, pred["boxes"][keep].astype(np.float64))
        np.testing.assert_array_equal(raw.masks, pred["masks"][keep].astype(np.uint8))
        _check_masks(raw)
        assert _partial_inside_box(raw, page.shape)  # an L or a slanted quad inside each box


@pytest.mark.parametrize("backend, fixture, model_name, found, fix", [
    ("transformers", "tiny_layout_hf", V3, "PP-DocLayoutV2", r"`pipeline` to v1 \(or layout.model_name: PP-DocLayoutV2\)"),
    ("transformers", "tiny_layout_v3_hf", "PP-DocLayoutV2", V3, r"`pipeline` to v1\.5 or v1\.6 \(or layout.model_name: "
                                                                r"PP-DocLayoutV3\)"),
    ("paddlex", "tiny_layout_paddle", V3, "PP-DocLayoutV2", r"`pipeline` to v1 \(or layout.model_name: PP-DocLayoutV2\)"),
    ("paddlex", "tiny_layout_v3_paddle", "PP-DocLayoutV2", V3, r"`pipeline` to v1\.5 or v1\.6"),
])
def test_a_checkpoint_of_the_other_layout_model_is_refused(backend, fixture, model_name, found, fix, request):
    model = request.getfixturevalue(fixture)
    with pytest.raises(LayoutLoadError, match=rf"is a {found} model .*but layout.model_name is {model_name}; "
                                              rf"to run it set the app's {fix}.*point layout.model at a {model_name}"):
        create_backend(backend, LayoutConfig(backend=backend, model_name=model_name, model=str(model)), "cpu")


SWAPPED = r"2 ids \(id 3: 'table' \(expected 'chart'\), id 21: 'chart' \(expected 'table'\)\).*mislabelled"


@pytest.mark.parametrize("model_name, fixture", [("PP-DocLayoutV2", "tiny_layout_hf"), (V3, "tiny_layout_v3_hf")])
def test_transformers_checkpoint_with_permuted_id2label_is_refused(model_name, fixture, request, tmp_path):
    import json
    import shutil

    from deployments.layout.backends.hf import CONVERTER_NAMES, check_checkpoint

    model = shutil.copytree(request.getfixturevalue(fixture), tmp_path / "ckpt")
    config = json.loads((model / "config.json").read_text())
    config["id2label"]["3"], config["id2label"]["21"] = "table", "chart"
    (model / "config.json").write_text(json.dumps(config))
    with pytest.raises(LayoutLoadError, match=SWAPPED):
        create_backend("transformers", LayoutConfig(backend="transformers", model_name=model_name, model=str(model)),
                       "cpu")
    # PaddleX's converter writes coarse names for five ids (same ids, same order): accepted.
    config["id2label"].update({"3": "chart", "21": "table", **{str(i): n for i, n in CONVERTER_NAMES.items()}})
    check_checkpoint(config, str(model), model_name)


@pytest.mark.parametrize("model_name, fixture", [("PP-DocLayoutV2", "tiny_layout_paddle"),
                                                 (V3, "tiny_layout_v3_paddle")])
def test_paddle_inference_dir_with_permuted_label_list_is_refused(model_name, fixture, request, tmp_path):
    import shutil

    import yaml

    model = shutil.copytree(request.getfixturevalue(fixture), tmp_path / "infer")
    meta = yaml.safe_load((model / "inference.yml").read_text())
    meta["label_list"][3], meta["label_list"][21] = "table", "chart"
    (model / "inference.yml").write_text(yaml.safe_dump(meta))
    with pytest.raises(LayoutLoadError, match=SWAPPED):
        create_backend("paddlex", LayoutConfig(backend="paddlex", model_name=model_name, model=str(model)), "cpu")
