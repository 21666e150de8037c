"""A toy model with the detector's training shape, for the engine tests.

Like the detector it is a functional keras.Model whose losses are added with `self.add_loss`
inside a layer, tracked by `keras.metrics.Mean` inside that layer, compiled with
`compile(optimizer)` and fitted on a dataset of input dicts without labels. Its layers carry
the detector's name prefixes (conv1_*, conv2_block*..conv5_block*, fpn_*, rpn_*, rcnn_*,
mask_*) so layer selection can be tested on it. Importable from subprocess scripts: put this
folder on sys.path.
"""
import keras
import numpy as np
from keras import layers, ops

IMAGE_SIDE = 8
TARGETS = 4


@keras.saving.register_keras_serializable(package="engine_toy")
class ToyLoss(layers.Layer):
    """Squared error per image, averaged over this replica's images, as the detector does.

    inputs: (pred [batch, TARGETS], target [batch, TARGETS], weight [batch] int32 0/1, like the
    detector's integer GT inputs); returns pred unchanged. Adds the loss with add_loss and
    tracks it plus an absolute error with Mean metrics.
    """

    def __init__(self, track_batch=False, **kwargs):
        kwargs.setdefault("dtype", "float32")  # losses stay float32 under mixed precision
        super().__init__(**kwargs)
        self.loss_tracker = keras.metrics.Mean(name="toy_loss")
        self.abs_tracker = keras.metrics.Mean(name="toy_abs_error")
        # Images this replica's call saw: shows how fit split the global batch.
        self.batch_tracker = keras.metrics.Mean(name="images_per_replica") if track_batch else None

    def call(self, inputs):
        pred, target, weight = (ops.cast(x, "float32") for x in inputs)
        per_image = ops.mean(ops.square(pred - target), axis=-1) * weight  # [batch]
        loss = ops.mean(per_image)
        self.add_loss(loss)
        self.loss_tracker.update_state(loss)
        self.abs_tracker.update_state(ops.mean(ops.abs(pred - target)))
        if self.batch_tracker is not None:
            self.batch_tracker.update_state(ops.cast(ops.shape(pred)[0], "float32"))
        return pred


def build_toy_model(config=None, trainable_bn=False, track_batch=False):
    """A model on {"image": [B, 8, 8, 3], "target": [B, 4], "weight": [B]}; `config` is ignored.

    conv1_bn is frozen at build time (BatchNormalization(trainable=False)) unless trainable_bn,
    as the detector does under TRAIN_BN false. track_batch adds the images_per_replica metric.
    """
    image = keras.Input((IMAGE_SIDE, IMAGE_SIDE, 3), name="image")
    target = keras.Input((TARGETS,), name="target")
    weight = keras.Input((), dtype="int32", name="weight")
    x = layers.Conv2D(4, 3, padding="same", name="conv1_conv")(image)
    x = layers.BatchNormalization(name="conv1_bn", trainable=trainable_bn)(x)
    x = layers.Activation("relu", name="conv1_relu")(x)
    for stage in (2, 3, 4, 5):
        x = layers.Conv2D(4, 3, padding="same", activation="relu", name=f"conv{stage}_block1_conv")(x)
    x = layers.Conv2D(4, 1, name="fpn_p5")(x)
    x = layers.GlobalAveragePooling2D(name="rcnn_pool")(x)
    x = layers.Dense(8, activation="relu", name="rpn_dense")(x)
    x = layers.Dense(8, activation="relu", name="mask_dense")(x)
    pred = layers.Dense(TARGETS, name="rcnn_out")(x)
    out = ToyLoss(track_batch=track_batch, name="rcnn_loss")([pred, target, weight])
    return keras.Model({"image": image, "target": target, "weight": weight}, out, name="toy")


def toy_arrays(count, seed=0):
    """count examples: image [count, 8, 8, 3] float32, a learnable target [count, 4], weight 1 [count] int32."""
    rng = np.random.default_rng(seed)
    image = rng.normal(size=(count, IMAGE_SIDE, IMAGE_SIDE, 3)).astype(np.float32)
    pooled = image.mean(axis=(1, 2))  # [count, 3]
    target = np.concatenate([pooled, pooled[:, :1] * 2], axis=1).astype(np.float32)
    return {"image": image, "target": target, "weight": np.ones(count, np.int32)}


def toy_dataset(count, batch_size, seed=0, repeat=True):
    """Dicts of global batches, in a fixed order (no shuffle), drop_remainder like training."""
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices(toy_arrays(count, seed)).batch(batch_size, drop_remainder=True)
    return ds.repeat() if repeat else ds
