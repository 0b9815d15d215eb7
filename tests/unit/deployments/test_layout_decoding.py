"""Decoding of transformers outputs and the lite reading order (pure numpy, hand-computed)."""

import numpy as np

from deployments.layout.backends.hf import decode, order_ranks
from deployments.layout.backends.lite import reading_order


def test_order_ranks_from_pairwise_logits():
    # logits[i, j] > 0 means "i is read before j": 2 before 0 before 1.
    big = 20.0
    logits = np.array([[0, big, -big], [-big, 0, -big], [big, big, 0]], float)
    assert order_ranks(logits).tolist() == [1, 2, 0]


def test_decode_top_k_scales_boxes_and_carries_order():
    logits = np.full((2, 3), -10.0)
    logits[0, 2], logits[1, 0] = 10.0, 0.0  # query 0 -> class 2 (score ~1), query 1 -> class 0 (0.5)
    boxes = np.array([[0.5, 0.5, 0.2, 0.4], [0.25, 0.25, 0.5, 0.5]])
    order = np.array([[0, -20.0], [20.0, 0]])  # query 1 first
    rows = decode(logits, boxes, order, width=100, height=200, score_floor=0.4)
    assert rows.shape == (2, 7)
    assert rows[0].round(3).tolist() == [2, 1.0, 40, 60, 60, 140, 2]
    assert rows[1].round(3).tolist() == [0, 0.5, 0, 0, 50, 100, 1]


def test_lite_reading_order_two_columns_between_full_width_blocks():
    boxes = np.array([
        [500, 300, 900, 400],   # right column, top
        [50, 50, 950, 100],     # full-width title
        [50, 300, 450, 400],    # left column, top
        [50, 450, 450, 600],    # left column, bottom
        [50, 700, 950, 800],    # full-width table
        [500, 450, 900, 600],   # right column, bottom
    ], float)
    assert reading_order(boxes, 1000).tolist() == [1, 2, 3, 0, 5, 4]
