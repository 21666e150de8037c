"""bench/bf16_agreement.py's matching: class, box within the pixels, score within the margin,
each bfloat16 detection used once."""

import bf16_agreement
import numpy as np


def dets(boxes, classes, scores):
    return {"boxes": np.array(boxes, np.float32).reshape(-1, 4), "class_ids": np.array(classes),
            "scores": np.array(scores, np.float32)}


def test_reproduced_needs_class_box_and_score():
    single = dets([[0, 0, 10, 10], [20, 20, 40, 40], [50, 50, 60, 60], [0, 0, 10, 10]], [1, 2, 1, 1],
                  [0.9, 0.8, 0.7, 0.6])
    half = dets([[1, 1, 11, 12],      # the first: 2 px off at most, score 0.01 off
                 [20, 20, 40, 43],    # the second's box, 3 px off: no
                 [50, 50, 60, 60]],   # the third's box, but class 2: no
                [1, 2, 2], [0.91, 0.8, 0.7])
    # The fourth duplicates the first; its only candidate is already used.
    assert bf16_agreement.reproduced(single, half) == 1
    assert bf16_agreement.reproduced(single, half, box_px=3.0) == 2
    assert bf16_agreement.reproduced(single, dets([[0, 0, 10, 10]], [1], [0.95])) == 0  # score 0.05 off
    assert bf16_agreement.reproduced(single, dets([], [], [])) == 0
