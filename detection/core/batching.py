"""Runs a per-image graph over a batch (matterport's ``batch_slice`` idiom).

Per-image work such as NMS or target sampling has data-dependent sizes, so it is written
for one image and padded to a fixed size, then stacked. The batch size must be static
(an ``int``): training uses ``drop_remainder=True`` and inference pads the last batch.
"""

import tensorflow as tf


def batch_slice(inputs, fn, batch_size):
    """Applies ``fn`` to each image of a batch and stacks the results.

    inputs: a tensor or list of tensors, each [batch_size, ...].
    fn: takes one slice of each input ([...] each) and returns a tensor or a list of tensors
        of a fixed shape (pad inside ``fn``).
    batch_size: the static batch size.
    Returns a tensor or a list of tensors [batch_size, ...], matching what ``fn`` returns.
    """
    if not isinstance(inputs, (list, tuple)):
        inputs = [inputs]
    outputs = []
    for i in range(batch_size):
        result = fn(*[x[i] for x in inputs])
        if not isinstance(result, (list, tuple)):
            result = [result]
        outputs.append(result)
    stacked = [tf.stack(o, axis=0) for o in zip(*outputs)]
    return stacked[0] if len(stacked) == 1 else stacked
