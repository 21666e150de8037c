"""Runs every command of docs/custom_data.md on small generated datasets.

The data the page names (``my_data/`` as VOC, ``balloon/`` as matterport's VIA balloon files,
``my_labelme/`` as LabelMe) is made from the synthetic shapes in a temporary folder. Each YAML
block of the page (first line ``# configs/NAME.yaml``) is written as it stands, with its paths
moved into that folder, and a tiny-model config inheriting it replaces configs/NAME.yaml in the
commands; each Python block (first line ``# FILE.py``) is written to the folder. So the
commands and configs are the doc's own, and the run fits in a test. Each ``python tools/NAME.py
ARGS`` runs as ``main(ARGS)`` of that tool in this process (what the command line runs, without
starting TensorFlow fifteen times); ``python -c`` lines run as a subprocess.
"""
import json
import pathlib
import re
import shlex
import subprocess
import sys
import xml.etree.ElementTree as ET

from detection.data.shapes import SHAPE_NAMES, make_shapes_dataset
from detection.visualize import save_image
from tests.tools import load_tool

REPO = pathlib.Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "custom_data.md"
DATA_NAMES = ("my_data", "balloon", "my_labelme")

TINY = """_BASE_: {name}.yaml
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
MINI_MASK_SHAPE: [28, 28]
EPOCHS: 1
STEPS_PER_EPOCH: 3
VALIDATION_STEPS: 1
IMAGES_PER_GPU: 1
DETECTION_MIN_CONFIDENCE: 0.0
"""
# The balloon runs (VIA and Python format) load their val files as my_data's run does, but
# skip the validation steps: my_data's run traces and runs the same validation graph.
TINY_EXTRA = {"balloon": "VALIDATION_STEPS: 0\n"}


def blocks(language):
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(), flags=re.S)


def named_blocks(language):
    """{name: text} of the blocks whose first line is ``# NAME``."""
    out = {}
    for block in blocks(language):
        first = block.splitlines()[0]
        assert first.startswith("# "), f"a {language} block of {DOC.name} does not start with '# NAME': {first}"
        out[first[2:].split()[0]] = block
    return out


def shapes_images(folder, count, seed):
    """count shapes images as JPEGs in ``folder``: [(stem, record)]."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for record in make_shapes_dataset(count, seed=seed, size=128).records:
        stem = f"img_{record.image_id:02d}"
        save_image(folder / f"{stem}.jpg", record.synthetic.render()[0])
        out.append((stem, record))
    return out


def corners(box):
    """(xs, ys) of a [y1, x1, y2, x2] box's corners."""
    y1, x1, y2, x2 = (int(v) for v in box)
    return [x1, x2, x2, x1], [y1, y1, y2, y2]


def write_voc(root, count=8):
    """VOC XML + JPEGs with train/val split lists."""
    (root / "xml").mkdir(parents=True)
    for stem, record in shapes_images(root / "images", count, seed=3):
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
    write_splits(root, count)


def write_splits(root, count):
    stems = [f"img_{i:02d}" for i in range(count)]
    (root / "train.txt").write_text("\n".join(stems[: count - 2]) + "\n")
    (root / "val.txt").write_text("\n".join(stems[count - 2:]) + "\n")


def write_balloon(root, count=6):
    """matterport's balloon layout: SUBSET/*.jpg and SUBSET/via_region_data.json, VIA 1.x
    (regions an object), no region attributes, one image without regions."""
    for subset, seed in (("train", 5), ("val", 6)):
        entries = {}
        for stem, record in shapes_images(root / subset, count, seed):
            regions = {}
            if record.image_id != 1:
                for i, box in enumerate(record.boxes):
                    xs, ys = corners(box)
                    regions[str(i)] = {"shape_attributes": {"name": "polygon", "all_points_x": xs, "all_points_y": ys},
                                       "region_attributes": {}}
            size = (root / subset / f"{stem}.jpg").stat().st_size
            entries[f"{stem}.jpg{size}"] = {"fileref": "", "size": size, "filename": f"{stem}.jpg",
                                            "base64_img_data": "", "file_attributes": {}, "regions": regions}
        (root / subset / "via_region_data.json").write_text(json.dumps(entries))


def write_labelme(root, count=8):
    """LabelMe files in json/ (imagePath ../images/...) and JPEGs in images/, with splits."""
    (root / "json").mkdir(parents=True)
    for stem, record in shapes_images(root / "images", count, seed=7):
        shapes = []
        for box, class_id in zip(record.boxes, record.class_ids):
            xs, ys = corners(box)
            shapes.append({"label": SHAPE_NAMES[class_id - 1], "points": [list(p) for p in zip(xs, ys)],
                           "group_id": None, "shape_type": "polygon", "flags": {}})
        data = {"version": "5.4.1", "flags": {}, "shapes": shapes, "imagePath": f"..\\images\\{stem}.jpg",
                "imageData": None, "imageHeight": 128, "imageWidth": 128}
        (root / "json" / f"{stem}.json").write_text(json.dumps(data))
    write_splits(root, count)


def localise(text, tmp_path):
    """The doc's relative data, run and code paths -> paths in ``tmp_path``."""
    names = "|".join(DATA_NAMES)
    text = re.sub(rf"(?<![\w/.-])({names})(?=/|\s|$)", lambda m: str(tmp_path / m.group(1)), text)
    text = re.sub(r"(?<![\w/.-])runs/", f"{tmp_path}/runs/", text)
    return re.sub(r"python:([\w.-]+\.py):", lambda m: f"python:{tmp_path / m.group(1)}:", text)


def test_every_command_of_the_custom_data_guide_runs(tmp_path, monkeypatch):
    write_voc(tmp_path / "my_data")
    write_balloon(tmp_path / "balloon")
    write_labelme(tmp_path / "my_labelme")
    configs = tmp_path / "configs"
    configs.mkdir()
    yamls = named_blocks("yaml")
    assert set(yamls) == {"configs/my_data.yaml", "configs/balloon.yaml", "configs/my_labelme.yaml"}
    for path, text in yamls.items():
        name = pathlib.Path(path).stem
        text = re.sub(r"^_BASE_: (\S+)", lambda m: f"_BASE_: {REPO / 'configs' / m.group(1)}", text, flags=re.M)
        (configs / f"{name}.yaml").write_text(localise(text, tmp_path))
        (configs / f"{name}_tiny.yaml").write_text(TINY.format(name=name) + TINY_EXTRA.get(name, ""))
    for path, text in named_blocks("python").items():
        (tmp_path / path).write_text(text)

    commands = [line for block in blocks("bash") for line in block.splitlines() if line.strip()]
    assert len(commands) >= 15
    monkeypatch.chdir(REPO)
    for command in commands:
        command = re.sub(r"configs/(\w+)\.yaml", lambda m: str(configs / f"{m.group(1)}_tiny.yaml"), command)
        argv = shlex.split(localise(command, tmp_path))
        assert argv[0] == "python", command
        tool = re.fullmatch(r"tools/(\w+)\.py", argv[1])
        if tool:
            assert load_tool(tool.group(1)).main(argv[2:]) == 0, command
        else:
            done = subprocess.run([sys.executable] + argv[1:], capture_output=True, text=True, timeout=60)
            assert done.returncode == 0, f"{command}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"

    run = tmp_path / "runs" / "my_data"
    for produced in ("stat_gt.json", "config.yaml", "log.csv", "final.weights.h5", "voc.json", "coco.json",
                     "detections/detections.json", "detections/img_00.jpg", "exported/saved_model.pb"):
        assert (run / produced).exists(), produced
    for produced in ("balloon/final.weights.h5", "balloon_python/final.weights.h5", "balloon/stat_gt",
                     "my_labelme/stat_gt"):
        assert (tmp_path / "runs" / produced).exists(), produced
    for folder, count in (("my_data/samples", 4), ("balloon/samples", 2), ("my_labelme/samples", 2)):
        pictures = list((tmp_path / "runs" / folder).glob("*.jpg")) + list((tmp_path / "runs" / folder).glob("*.png"))
        assert len(pictures) == count, folder
