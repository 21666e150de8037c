"""One worker of test_multiworker.py: TF_CONFIG names two workers on 127.0.0.1.

argv: output_dir weights_out. Trains the toy model with detection.engine.trainer.train under
MultiWorkerMirroredStrategy (only the chief writes the run folder), then saves this worker's
weights to weights_out and prints "RESULT <json>".
"""
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from detection.engine.distribute import make_strategy  # noqa: E402

strategy, info = make_strategy()  # TF_CONFIG is set: MultiWorkerMirroredStrategy

from engine_toy import build_toy_model, toy_dataset  # noqa: E402

from detection.config import Config  # noqa: E402
from detection.engine.trainer import train  # noqa: E402


def builder(config):
    return build_toy_model(config, track_batch=True)


output_dir, weights_out = sys.argv[1], sys.argv[2]
config = Config({"IMAGES_PER_GPU": 2, "EPOCHS": 2, "STEPS_PER_EPOCH": 3, "VALIDATION_STEPS": 0,
                 "LR_WARMUP_STEPS": 2, "LEARNING_RATE": 0.05})
result = train(builder, config, lambda c: toy_dataset(24, c.BATCH_SIZE), None, output_dir,
               strategy=strategy, strategy_info=info, verbose=0)
result.model.save_weights(weights_out)
print("RESULT " + json.dumps({
    "kind": info.kind, "workers": info.workers, "replicas": info.replicas, "is_chief": info.is_chief,
    "global_batch": result.config.BATCH_SIZE, "epochs_done": result.epochs_done,
    "iterations": int(result.model.optimizer.iterations.numpy()), "final": result.final_weights,
    "images_per_replica": result.history["images_per_replica"],
}))
