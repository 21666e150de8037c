"""The Python API: one public import, the README's example as written, detect() against
tools/infer.py, display_instances."""
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import REPO
from tests.tools import load_tool


def test_every_public_name_imports_and_tensorflow_waits_until_needed():
    import detection

    for name in detection.__all__:
        assert getattr(detection, name) is not None, name
    code = ("import sys, detection; from detection import Config, load_dataset, evaluate_coco; "
            "assert 'tensorflow' not in sys.modules, 'tensorflow imported'; "
            "from detection import Predictor; assert 'tensorflow' in sys.modules")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]


def readme_example():
    text = (REPO / "README.md").read_text()
    section = text.split("## Python API", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_readme_example_runs_as_written(tmp_path, monkeypatch):
    # Run where the README's relative paths (configs/, docs/) resolve, writing into tmp_path; in
    # this process, which has imported TensorFlow already (a fresh process's imports: above).
    for name in ("configs", "docs"):
        os.symlink(REPO / name, tmp_path / name)
    monkeypatch.chdir(tmp_path)
    exec(compile(readme_example(), str(REPO / "README.md"), "exec"), {"__name__": "__main__"})
    assert (tmp_path / "runs" / "readme_example" / "final.weights.h5").is_file()
    from detection.data.images import read_image

    assert read_image(tmp_path / "detections.jpg").shape == (256, 256, 3)  # a 128 px image drawn at 256


def test_detect_on_arrays_equals_infer_on_the_same_pixels_as_files(trained_shapes, tmp_path):
    import cv2
    from pycocotools import mask as mask_utils

    from detection import Predictor
    from detection.visualize import save_image

    config, weights, dataset = trained_shapes
    images = []
    for record, (h, w) in zip(dataset.records, [(64, 64), (48, 80), (100, 60), (97, 131)]):
        image, _ = record.synthetic.render()
        images.append(cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA))  # four sizes
    paths = []
    for i, image in enumerate(images):
        paths.append(str(tmp_path / f"image_{i}.png"))
        save_image(paths[-1], image)
    results = Predictor.from_weights(config, weights, score_threshold=0.3).detect(images)
    assert load_tool("infer").main(["--config", str(weights.parent / "config.yaml"), "--weights", str(weights),
                                    "--output", str(tmp_path / "out"), "--score-threshold", "0.3", *paths]) == 0
    written = json.loads((tmp_path / "out" / "detections.json").read_text())
    # The first image keeps its training size, where the overfitted model finds its 2 shapes on
    # any CPU; on the resized ones it finds what the CPU's kernels made of it
    # (3 detections in all on an AMX CPU, at least 4 on others), compared just the same.
    assert len(results[0]["rois"]) >= 2
    for i, (image, result) in enumerate(zip(images, results)):
        rows = [d for d in written if d["image_id"] == i]
        assert len(rows) == len(result["rois"]) and result["masks"].shape == image.shape[:2] + (len(rows),)
        assert result["masks"].dtype == bool and set(result["class_names"]) <= {"square", "circle", "triangle"}
        for d, box, class_id, score, mask in zip(rows, result["rois"], result["class_ids"], result["scores"],
                                                 np.moveaxis(result["masks"], -1, 0)):
            y1, x1, y2, x2 = box
            np.testing.assert_allclose(d["bbox"], [x1, y1, x2 - x1, y2 - y1], atol=1e-4)
            assert d["category_id"] == class_id and d["score"] == pytest.approx(float(score), abs=1e-6)
            np.testing.assert_array_equal(mask_utils.decode(d["segmentation"]).astype(bool), mask)


def test_display_instances_takes_a_detect_result_or_matterport_arguments(tmp_path):
    from detection import display_instances
    from detection.data.images import read_image
    from detection.visualize import class_colour

    image = np.full((300, 400, 3), 100, np.uint8)
    masks = np.zeros((300, 400, 2), bool)
    masks[50:150, 60:200, 0] = True
    masks[200:260, 250:380, 1] = True
    result = {"rois": np.array([[50, 60, 150, 200], [200, 250, 260, 380]], np.float32), "masks": masks,
              "class_ids": np.array([3, 17]), "class_names": ["cat", "dog"], "scores": np.array([0.9, 0.6])}
    picture = display_instances(image, result, path=tmp_path / "p.png")
    assert picture.shape == image.shape and picture.dtype == np.uint8 and np.all(image == 100)  # input untouched
    inside, outside = picture[100, 120], picture[280, 30]
    assert np.all(outside == 100) and not np.all(inside == 100)
    # The fill blends the class colour (cat: class id 3) into the pixel.
    assert np.argmax(inside.astype(int) - 100) == np.argmax(class_colour(3))
    np.testing.assert_array_equal(read_image(tmp_path / "p.png"), picture)
    matterport_style = display_instances(image, result["rois"], masks, result["class_ids"],
                                         {3: "cat", 17: "dog"}, result["scores"])
    np.testing.assert_array_equal(matterport_style, picture)
