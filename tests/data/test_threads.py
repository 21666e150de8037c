import threading

import numpy as np

from detection.data import threads
from detection.engine import predictor


def test_thread_map_keeps_order_and_uses_the_pool():
    names = []

    def square(x):
        names.append(threading.current_thread().name)
        return x * x

    assert threads.thread_map(square, range(20)) == [x * x for x in range(20)]
    assert any(name.startswith("detection-thread-map") for name in names) == (threads.os.cpu_count() > 1)
    # Called from inside the pool (nested): serial, in that thread, no waiting on itself.
    nested = threads.thread_map(lambda x: threads.thread_map(square, [x, x + 1]), range(4))
    assert nested == [[x * x, (x + 1) ** 2] for x in range(4)]


def test_matterport_mask_pasting_in_threads_gives_the_serial_pixels(monkeypatch):
    rng = np.random.default_rng(0)
    masks = rng.uniform(0, 1, (60, 28, 28)).astype(np.float32)
    corners = rng.uniform(-30, 200, (60, 2))
    sides = rng.uniform(0, 90, (60, 2))
    boxes = np.concatenate([corners, corners + sides], axis=1).astype(np.float32)
    boxes[0] = [10, 10, 10, 40]  # empty
    threaded = predictor.paste_masks_matterport(masks, boxes, 180, 210)
    monkeypatch.setattr(predictor, "thread_map", lambda f, items: [f(i) for i in items])
    serial = predictor.paste_masks_matterport(masks, boxes, 180, 210)
    np.testing.assert_array_equal(threaded, serial)
    assert threaded[0].sum() == 0 and threaded.sum() > 10000
