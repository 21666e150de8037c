"""One worker of test_multiworker_detector.py, through tools/train.py's own functions.

argv: weights_out, then tools/train.py's flags. TF_CONFIG names the cluster. Parses the flags,
makes the strategy and trains exactly as tools/train.py does, then saves this worker's
weights (the detector's, chief or not) to weights_out and prints "RESULT <json>".
"""
import importlib.util
import json
import os
import pathlib
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
TOOL = pathlib.Path(__file__).resolve().parents[2] / "tools" / "train.py"
spec = importlib.util.spec_from_file_location("train_tool", TOOL)
train_tool = importlib.util.module_from_spec(spec)
spec.loader.exec_module(train_tool)

weights_out, argv = sys.argv[1], sys.argv[2:]
args = train_tool.parse_args(argv)
config = train_tool.resolve_config(args)
strategy, info = train_tool.make_strategy_for(args, config)
result = train_tool.train_from_args(args, config, strategy, info)
result.built.save_weights(weights_out)
print("RESULT " + json.dumps({
    "kind": info.kind, "workers": info.workers, "replicas": info.replicas, "is_chief": info.is_chief,
    "worker_index": info.worker_index, "global_batch": result.config.BATCH_SIZE,
    "epochs_done": result.epochs_done, "iterations": int(result.model.optimizer.iterations.numpy()),
    "final": result.final_weights, "history": {k: [float(v) for v in vs] for k, vs in result.history.items()},
}), flush=True)
