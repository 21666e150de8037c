"""The numeric precision a model runs inference in, and whether this CPU computes it natively.

Inference follows MIXED_PRECISION as training does, as TF Model Garden's runtime dtype:

  MIXED_PRECISION  inference precision  Keras dtype policy while the model is built
  none, float16    float32              float32 (float16 has no CPU kernels worth using)
  bfloat16         bfloat16             mixed_bfloat16

Under ``mixed_bfloat16`` the convolutions and dense layers compute in bfloat16 (their weights
stay float32 variables, cast at each call); the layers that declare ``dtype="float32"``
(anchors, proposals' decoding, clipping and NMS, the detection layer, box frames, the heads'
logits, probabilities and deltas) and RoIAlign's coordinates and sampling stay float32
(detection/layers/*.py cast their inputs), so scores and thresholds compare in float32.

A ``--precision float32|bfloat16`` flag (tools/infer.py, tools/eval_coco.py, tools/export.py)
overrides the config: ``with_precision(config, precision)``.

CPUs: bfloat16 is fast where the CPU has bfloat16 dot products (x86 flags ``avx512_bf16`` or
``amx_bf16``, Arm ``bf16``); elsewhere oneDNN emulates it and it is slower than float32.
``bfloat16_warning`` gives the one line the tools print then (they still run it).
"""

import contextlib
import sys

PRECISIONS = ("float32", "bfloat16")
NATIVE_BFLOAT16_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")
_POLICIES = {"float32": "float32", "bfloat16": "mixed_bfloat16"}


def inference_precision(config):
    """config -> "float32" or "bfloat16" (the table in the module docstring)."""
    return "bfloat16" if config.MIXED_PRECISION == "bfloat16" else "float32"


def with_precision(config, precision):
    """config with MIXED_PRECISION set so that inference runs in ``precision`` (None: config
    unchanged). "float32" on a float16 config keeps it (inference is float32 there already)."""
    if precision is None or inference_precision(config) == precision:
        return config
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    return config.replace(MIXED_PRECISION="bfloat16" if precision == "bfloat16" else "none")


def policy_name(precision):
    """"float32" -> "float32", "bfloat16" -> "mixed_bfloat16" (the Keras dtype policy)."""
    return _POLICIES[precision]


@contextlib.contextmanager
def dtype_policy(name):
    """Sets the global Keras dtype policy to ``name`` while layers are built; restores it after."""
    import keras  # here: tools/eval_coco.py's results mode imports this module without TensorFlow

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def cpu_flags(path="/proc/cpuinfo"):
    """The CPU feature flags named in ``path`` (Linux: the ``flags`` lines on x86, ``Features``
    on Arm), as a set of strings; empty when the file cannot be read (not Linux)."""
    flags = set()
    try:
        with open(path) as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip().lower() in ("flags", "features"):
                    flags.update(value.split())
    except OSError:
        pass
    return flags


def has_native_bfloat16(flags):
    """flags: a set of CPU flag names (cpu_flags) -> whether bfloat16 dot products are native."""
    return any(flag in flags for flag in NATIVE_BFLOAT16_FLAGS)


def bfloat16_warning(precision, flags=None):
    """The one line to print when ``precision`` is bfloat16 and the CPU lacks bfloat16 units,
    else None. flags: the CPU's flags (default: read now with cpu_flags)."""
    if precision != "bfloat16":
        return None
    flags = cpu_flags() if flags is None else flags
    if has_native_bfloat16(flags):
        return None
    return ("warning: bfloat16 inference on a CPU without native bfloat16 (no avx512_bf16 / amx_bf16 flag in "
            "/proc/cpuinfo): emulated, slower than float32 here; --precision float32 runs float32")


def warn_if_emulated(config, flags=None):
    """Prints bfloat16_warning for ``config``'s inference precision to stderr (what the tools
    do at start); returns the line, or None when there is nothing to say."""
    line = bfloat16_warning(inference_precision(config), flags)
    if line:
        print(line, file=sys.stderr, flush=True)
    return line


def add_precision_flag(parser):
    """Adds ``--precision float32|bfloat16`` (default: from the config's MIXED_PRECISION)."""
    parser.add_argument("--precision", choices=PRECISIONS,
                        help="inference precision (default: bfloat16 when the config's MIXED_PRECISION is "
                             "bfloat16, else float32); overrides the config")
