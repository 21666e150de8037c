"""--weights model.pth on the tools: infer.py runs a torchvision state_dict and gives
torchvision's recorded detections; convert_weights.py writes a .weights.h5 that gives the same;
export.py writes a SavedModel that gives them too (ResNet-50 and MobileNetV3 models)."""

import json

import cv2
import numpy as np
import pytest
import torchvision_oracle as oracle

from tests.conftest import REPO
from tests.modeling.pth_writer import write_pth
from tests.tools import load_tool

FIXTURE = REPO / "tests" / "fixtures" / "torchvision_oracle"
NAME = "fasterrcnn_resnet50_fpn"
SETTINGS = ["--set", f"NUM_CLASSES={oracle.NUM_CLASSES}", "--set", "CLASS_NAMES=[a, b, c, d]",
            "--set", "CATEGORY_IDS=null",
            "--set", f"IMAGE_MIN_DIM={oracle.MIN_SIZE}", "--set", f"IMAGE_MAX_DIM={oracle.MAX_SIZE}",
            "--set", f"DETECTION_MAX_INSTANCES={oracle.DETECTIONS}"]
CONFIG = str(REPO / "configs" / "torchvision_fasterrcnn_r50_fpn.yaml")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("torchvision_tools")
    manifest = json.loads((FIXTURE / f"manifest_{NAME}.json").read_text())
    state = oracle.oracle_state_dict(manifest)
    state["backbone.body.bn1.num_batches_tracked"] = np.array(0, np.int64)
    write_pth(folder / "model.pth", state)
    name, image = oracle.oracle_images()[1]
    cv2.imwrite(str(folder / f"{name}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    recorded = next(e for e in json.loads((FIXTURE / "detections.json").read_text())["models"][NAME]
                    if e["image"] == name)
    return folder, folder / f"{name}.png", recorded


def detections_match(results_path, recorded):
    results = json.loads(results_path.read_text())
    ours = {"boxes": np.array([[y, x, y + h, x + w] for x, y, w, h in (r["bbox"] for r in results)], np.float32),
            "class_ids": np.array([r["category_id"] for r in results]),
            "scores": np.array([r["score"] for r in results], np.float32)}
    # COCO results round bbox to 2 decimals: within the 1-pixel tolerance
    return oracle.match(recorded, ours, oracle.DETECTIONS)


def test_infer_and_convert_with_a_pth(files, capsys):
    folder, image, recorded = files
    infer = load_tool("infer")
    args = ["--config", CONFIG, "--weights", str(folder / "model.pth"), "--no-pictures", "--score-threshold", "0.05"]
    assert infer.main(args + ["--output", str(folder / "out_pth"), str(image)] + SETTINGS) == 0
    printed = capsys.readouterr().out
    keys = len(json.loads((FIXTURE / f"manifest_{NAME}.json").read_text())["shapes"])
    assert f"loaded {keys} of {keys} arrays from model.pth" in printed
    result = detections_match(folder / "out_pth" / "detections.json", recorded)
    assert oracle.passes(result) and result["matched"] == oracle.DETECTIONS, result

    convert = load_tool("convert_weights")
    converted = folder / "model.weights.h5"
    assert convert.main(["--config", CONFIG, "--weights", str(folder / "model.pth"),
                         "--output", str(converted)] + SETTINGS) == 0
    args = ["--config", CONFIG, "--weights", str(converted), "--no-pictures", "--score-threshold", "0.05"]
    assert infer.main(args + ["--output", str(folder / "out_h5"), str(image)] + SETTINGS) == 0
    result = detections_match(folder / "out_h5" / "detections.json", recorded)
    assert oracle.passes(result) and result["matched"] == oracle.DETECTIONS, result


def test_bad_pth_one_line(files, tmp_path, capsys):
    folder, image, _ = files
    crafted = REPO / "tests" / "fixtures" / "pth" / "runs_code.pth"
    infer = load_tool("infer")
    code = infer.main(["--config", CONFIG, "--weights", str(crafted), "--output", str(tmp_path), str(image)]
                      + SETTINGS)
    error = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert error[-1].startswith("error: ") and "runs_code.pth: refused to unpickle global posix.system" in error[-1]


def test_export_a_torchvision_pth_gives_torchvisions_detections(files, tmp_path):
    """tools/export.py on a torchvision config and .pth: the SavedModel (its own resize in the
    graph, static shapes) gives torchvision's recorded detections, as the Predictor does."""
    folder, _, recorded = files
    _export_matches(CONFIG, folder / "model.pth", recorded, tmp_path)


def test_export_the_mobile_models_torch_saved_pth(tmp_path):
    """The same for fasterrcnn_mobilenet_v3_large_fpn from the file torch.save wrote."""
    name = "fasterrcnn_mobilenet_v3_large_fpn"
    manifest = json.loads((FIXTURE / f"manifest_{name}.json").read_text())
    pth = tmp_path / f"{name}.pth"
    oracle.with_data(FIXTURE / oracle.WITHOUT_DATA[name], manifest, pth)
    recorded = json.loads((FIXTURE / "detections.json").read_text())["models"][name][1]
    _export_matches(str(REPO / "configs" / oracle.MODELS[name]), pth, recorded, tmp_path)


def _export_matches(config, pth, recorded, tmp_path):
    from detection.export import load_serving

    out = tmp_path / "export" / "1"
    assert load_tool("export").main(["--config", config, "--weights", str(pth), "--output", str(out),
                                     "--set", "DETECTION_MIN_CONFIDENCE=0.05"] + SETTINGS) == 0
    image = dict(oracle.oracle_images())[recorded["image"]]
    served = load_serving(out)(image[None])
    n = int(served["num_detections"][0])
    ours = {"boxes": served["boxes"][0, :n], "class_ids": served["class_ids"][0, :n], "scores": served["scores"][0, :n]}
    result = oracle.match(recorded, ours, oracle.DETECTIONS)
    assert oracle.passes(result) and result["matched"] == oracle.DETECTIONS, result
    assert result["box_diff"] < 0.01, result  # the float resize and float path: far inside the 1-px tolerance
