"""A toy training run for test_kill_resume.py: train(..., resume=True) into argv[1].

Epochs are exactly one pass over the data, so a run resumed at an epoch boundary sees the
same batches as an uninterrupted one. Prints "RESULT <json>" when it completes.
"""
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from engine_toy import build_toy_model, toy_dataset  # noqa: E402

from detection.config import Config  # noqa: E402
from detection.engine.trainer import train  # noqa: E402

STEPS = 40
CONFIG = Config({"IMAGES_PER_GPU": 4, "EPOCHS": 6, "STEPS_PER_EPOCH": STEPS, "VALIDATION_STEPS": 0,
                 "LEARNING_RATE": 0.05, "LR_WARMUP_STEPS": 30, "LR_SCHEDULE": "cosine",
                 "GRADIENT_CLIP_NORM": 1.0, "SEED": 5})


def dataset(config):
    return toy_dataset(STEPS * config.BATCH_SIZE, config.BATCH_SIZE)


if __name__ == "__main__":
    result = train(build_toy_model, CONFIG, dataset, None, sys.argv[1], resume=True, verbose=0)
    print("RESULT " + json.dumps({"initial_epoch": result.initial_epoch, "epochs_done": result.epochs_done,
                                  "final": result.final_weights}), flush=True)
