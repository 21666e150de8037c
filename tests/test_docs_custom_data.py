"""Runs every command of docs/custom_data.md on a small generated VOC dataset.

The doc's YAML config is written as it stands (paths moved into a temporary folder), and a
tiny-model config inheriting it replaces configs/my_data.yaml in the commands, so the commands
are the doc's own and the run fits in a test.
"""
import os
import pathlib
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from detection.data.shapes import SHAPE_NAMES, make_shapes_dataset
from detection.visualize import save_image

REPO = pathlib.Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "custom_data.md"

TINY = """_BASE_: my_data.yaml
BACKBONE: resnet_tiny
BACKBONE_WEIGHTS: none
TINY_BACKBONE_WIDTH: 16
TOP_DOWN_PYRAMID_SIZE: 32
FPN_CLASSIF_FC_LAYERS_SIZE: 64
IMAGE_MIN_DIM: 128
IMAGE_MAX_DIM: 128
RPN_ANCHOR_SCALES: [16, 32, 48, 64, 128]
PRE_NMS_LIMIT: 300
POST_NMS_ROIS_TRAINING: 100
POST_NMS_ROIS_INFERENCE: 100
TRAIN_ROIS_PER_IMAGE: 16
MAX_GT_INSTANCES: 8
EPOCHS: 1
STEPS_PER_EPOCH: 3
VALIDATION_STEPS: 1
IMAGES_PER_GPU: 2
DETECTION_MIN_CONFIDENCE: 0.0
"""


def blocks(language):
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(), flags=re.S)


def write_voc(root, count=8):
    """count shapes images as JPEG + VOC XML, with train/val split lists."""
    (root / "images").mkdir(parents=True)
    (root / "xml").mkdir()
    dataset = make_shapes_dataset(count, seed=3, size=128)
    for record in dataset.records:
        stem = f"img_{record.image_id:02d}"
        save_image(root / "images" / f"{stem}.jpg", record.synthetic.render()[0])
        ann = ET.Element("annotation")
        ET.SubElement(ann, "filename").text = f"{stem}.jpg"
        ET.SubElement(ann, "path").text = f"/somebody/else/{stem}.jpg"  # ignored by the loader
        size = ET.SubElement(ann, "size")
        for tag, value in (("width", 128), ("height", 128), ("depth", 3)):
            ET.SubElement(size, tag).text = str(value)
        for (y1, x1, y2, x2), class_id in zip(record.boxes, record.class_ids):
            obj = ET.SubElement(ann, "object")
            ET.SubElement(obj, "name").text = SHAPE_NAMES[class_id - 1]
            ET.SubElement(obj, "difficult").text = "0"
            box = ET.SubElement(obj, "bndbox")
            for tag, value in (("xmin", x1 + 1), ("ymin", y1 + 1), ("xmax", x2), ("ymax", y2)):
                ET.SubElement(box, tag).text = str(int(value))
        ET.ElementTree(ann).write(root / "xml" / f"{stem}.xml")
    stems = [f"img_{i:02d}" for i in range(count)]
    (root / "train.txt").write_text("\n".join(stems[: count - 2]) + "\n")
    (root / "val.txt").write_text("\n".join(stems[count - 2:]) + "\n")


def test_every_command_of_the_custom_data_guide_runs(tmp_path):
    data = tmp_path / "my_data"
    write_voc(data)
    configs = tmp_path / "configs"
    configs.mkdir()
    (yaml_text,) = blocks("yaml")
    yaml_text = yaml_text.replace("_BASE_: voc_r50_fpn.yaml", f"_BASE_: {REPO / 'configs' / 'voc_r50_fpn.yaml'}")
    (configs / "my_data.yaml").write_text(yaml_text.replace("my_data/", f"{data}/"))
    (configs / "tiny.yaml").write_text(TINY)

    commands = [line for block in blocks("bash") for line in block.splitlines() if line.strip()]
    assert len(commands) >= 8
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    for command in commands:
        command = (command.replace("configs/my_data.yaml", str(configs / "tiny.yaml"))
                   .replace("runs/my_data", "<RUN>").replace("my_data/", f"{data}/")
                   .replace("<RUN>", str(tmp_path / "runs" / "my_data")))
        assert command.startswith("python ")
        done = subprocess.run([sys.executable] + _split(command)[1:], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"{command}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"

    run = tmp_path / "runs" / "my_data"
    for produced in ("stat_gt.json", "config.yaml", "log.csv", "final.weights.h5", "voc.json", "coco.json",
                     "detections/detections.json", "detections/img_00.jpg", "exported/saved_model.pb"):
        assert (run / produced).exists(), produced
    assert len(list((run / "samples").glob("*.jpg"))) + len(list((run / "samples").glob("*.png"))) == 4


def _split(command):
    import shlex

    return shlex.split(command)
