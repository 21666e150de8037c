"""The optimizer: SGD with momentum, global-norm clipping, L2 weight decay, mixed precision.

Two corrections to Keras 3.15 on TensorFlow, both found by tests/engine/test_distributed_equivalence.py:

1. Clipping before the all-reduce. Keras clips each replica's gradient (`_clip_gradients`)
   and only then sums the replicas (`_all_reduce_sum_gradients` inside `_backend_update_step`),
   so on N replicas GRADIENT_CLIP_NORM bounds each 1/N share, not the gradient: one step
   on 2 replicas differed from one device by 5e-3. `SGD` sums first, then clips.
2. The loss-scale finite check sees one replica. Under MirroredStrategy's merge-call path
   `LossScaleOptimizer` takes `finite` from the first replica, assuming gradients were
   already summed; they are not, so an overflow on replica 2 alone put NaN into every
   weight. `LossScaleOptimizer.check_finite` here agrees across replicas.

Weight decay is coupled L2, as in Detectron2 and torch SGD: `grad += WEIGHT_DECAY x w` before
the momentum update, after clipping. Keras' own `weight_decay` is decoupled (`w -= lr x wd x w`,
outside momentum), about 1 - momentum = 10x weaker at momentum 0.9, so a config ported from
Detectron2 would regularise less. Which variables decay uses Keras' `exclude_from_weight_decay`
(BatchNorm gamma/beta and biases by name).
"""
import keras
import tensorflow as tf
from keras import ops

# Substrings of variable names that are not decayed: biases and BatchNorm's gamma and beta.
NO_DECAY_NAMES = ("bias", "gamma", "beta")


def _replica_context_with_peers():
    """The replica context when more than one replica is in sync, else None."""
    ctx = tf.distribute.get_replica_context()
    if ctx is None or ctx.num_replicas_in_sync == 1:
        return None
    return ctx


@keras.saving.register_keras_serializable(package="detection")
class SGD(keras.optimizers.SGD):
    """keras.optimizers.SGD that sums replicas before clipping and decays with coupled L2.

    weight_decay here is the L2 coefficient added to gradients (not Keras' decoupled decay).
    Gradient accumulation is not supported (it would clip before summing again).
    """

    def __init__(self, *args, l2=0.0, **kwargs):
        if kwargs.get("gradient_accumulation_steps"):
            raise ValueError("detection.engine.optimizer.SGD does not support gradient_accumulation_steps")
        if kwargs.get("weight_decay"):
            raise ValueError("use l2= (coupled L2); Keras' weight_decay is decoupled")
        super().__init__(*args, **kwargs)
        self.l2 = float(l2)

    def _clip_gradients(self, grads):
        # Called once per step, in replica context, before any update: sum here, then clip
        # the true (global) gradient. _all_reduce_sum_gradients below then has nothing to do.
        ctx = _replica_context_with_peers()
        if ctx is not None:
            present = [i for i, g in enumerate(grads) if g is not None]
            summed = ctx.all_reduce(tf.distribute.ReduceOp.SUM, [grads[i] for i in present])
            grads = list(grads)
            for i, g in zip(present, summed):
                grads[i] = g
        return super()._clip_gradients(grads)

    def _all_reduce_sum_gradients(self, grads_and_vars):
        return list(grads_and_vars)  # already summed in _clip_gradients

    def _apply_weight_decay(self, variables):
        pass  # decay is coupled into the gradient in update_step

    def update_step(self, gradient, variable, learning_rate):
        if self.l2 and self._use_weight_decay(variable):
            gradient = ops.add(ops.cast(gradient, variable.dtype), ops.multiply(variable, self.l2))
        super().update_step(gradient, variable, learning_rate)

    def get_config(self):
        return {**super().get_config(), "l2": self.l2}


@keras.saving.register_keras_serializable(package="detection")
class LossScaleOptimizer(keras.optimizers.LossScaleOptimizer):
    """keras LossScaleOptimizer whose finite check is the AND over all replicas."""

    def check_finite(self, grads):
        finite = super().check_finite(grads)
        ctx = _replica_context_with_peers()
        if ctx is None:
            return finite
        # ReduceOp has only SUM and MEAN: count the replicas that saw a non-finite gradient.
        not_finite = ops.cast(ops.logical_not(finite), "float32")
        return ops.equal(ctx.all_reduce(tf.distribute.ReduceOp.SUM, not_finite), 0.0)


def dtype_policy_name(mixed_precision):
    """MIXED_PRECISION value -> Keras dtype policy name."""
    return {"none": "float32", "float16": "mixed_float16", "bfloat16": "mixed_bfloat16"}[mixed_precision]


def make_optimizer(config, learning_rate):
    """The optimizer a Config asks for; build it inside strategy.scope().

    learning_rate: a float or a LearningRateSchedule (schedules.schedule_from_config).
    Under MIXED_PRECISION float16 the SGD is wrapped in the loss-scale optimizer above;
    Keras compile would wrap it in its own, whose finite check sees only one replica.
    bfloat16 has float32's exponent range and needs no loss scaling.
    """
    sgd = SGD(
        learning_rate=learning_rate,
        momentum=config.LEARNING_MOMENTUM,
        global_clipnorm=config.GRADIENT_CLIP_NORM or None,
        l2=config.WEIGHT_DECAY,
    )
    sgd.exclude_from_weight_decay(var_names=list(NO_DECAY_NAMES))
    if config.MIXED_PRECISION == "float16":
        return LossScaleOptimizer(sgd, name="loss_scale_optimizer")
    return sgd
