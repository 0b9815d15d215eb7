"""Layout post-processing against PaddleX ``LayoutAnalysisProcess.apply`` + ``update_order_index``
on hundreds of random raw detections and option sets."""

from __future__ import annotations

import random

import numpy as np
import pytest
from devtools.official import SKIP_ORDER_LABELS, official_layout, update_order_index

from deployments.labels import PP_DOCLAYOUT_V2_LABELS, V1_MERGE_MODES, V1_THRESHOLDS
from deployments.layout.options import LayoutOptions
from deployments.layout.postprocess import postprocess_layout

pytestmark = pytest.mark.differential


def _raw(rng: random.Random, width: int, height: int) -> np.ndarray:
    n, cols = rng.randint(1, 40), rng.choice([6, 7, 8])  # PaddleX crashes on 0 rows
    rows = []
    order = list(range(1, n + 1))
    rng.shuffle(order)
    for k in range(n):
        x1, y1 = rng.uniform(-20, width), rng.uniform(-20, height)
        x2, y2 = x1 + rng.uniform(-5, width * 0.9), y1 + rng.uniform(-5, height * 0.9)
        cls = rng.choice([14, 14, 22, 22, 17, 21, 5, 15, 3, rng.randrange(25)])
        row = [cls, round(rng.uniform(0.2, 1.0), 3), x1, y1, x2, y2]
        if rng.random() < 0.15 and rows:  # near-duplicates exercise NMS and containment
            base = rows[rng.randrange(len(rows))]
            row = [base[0] if rng.random() < 0.5 else cls, rng.uniform(0.3, 1), *(v + rng.uniform(-3, 3) for v in base[2:6])]
        if cols >= 7:
            row.append(order[k] if rng.random() < 0.9 else rng.choice(order))
        if cols == 8:
            row.append(rng.uniform(0, 30))
        rows.append(row)
    return np.array(rows, dtype=np.float64).reshape(n, cols)


def _options(rng: random.Random) -> dict:
    threshold = rng.choice([dict(V1_THRESHOLDS), round(rng.uniform(0.2, 0.7), 2),
                            {k: round(rng.uniform(0.2, 0.8), 2) for k in rng.sample(range(25), 5)}])
    unclip = rng.choice([None, (1.0, 1.0), 1.2, (0.9, 1.1), {22: (1.1, 1.3), 14: (0.8, 0.8)}])
    merge = rng.choice([dict(V1_MERGE_MODES), "large", "small", "union", None,
                        {k: rng.choice(["large", "small", "union"]) for k in rng.sample(range(25), 6)}])
    return {"threshold": threshold, "nms": rng.random() < 0.7, "unclip_ratio": unclip, "merge_bboxes_mode": merge}


@pytest.mark.parametrize("seed", range(400))
def test_layout_postprocess_matches_official(seed):
    rng = random.Random(seed)
    width, height = rng.choice([(600, 800), (1191, 1684), (1684, 1191), (300, 300)])
    raw, opts = _raw(rng, width, height), _options(rng)
    ours = postprocess_layout(raw, (width, height), LayoutOptions(**opts), PP_DOCLAYOUT_V2_LABELS)
    unclip = opts["unclip_ratio"]
    unclip = {k: list(v) for k, v in unclip.items()} if isinstance(unclip, dict) else unclip
    official = official_layout(PP_DOCLAYOUT_V2_LABELS).apply(
        raw.copy(), (width, height), opts["threshold"], opts["nms"], unclip, opts["merge_bboxes_mode"],
        layout_shape_mode="rect")
    official = update_order_index(list(official), SKIP_ORDER_LABELS) if len(official) else []
    assert [b.to_json() for b in ours] == official
