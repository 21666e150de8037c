import pathlib

import pytest

from detection.config import KEYS, Config, ConfigError

REPO = pathlib.Path(__file__).resolve().parents[1]


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_defaults_and_derived():
    c = Config()
    assert c.IMAGES_PER_GPU == 2 and c.GPU_COUNT == 1 and c.BATCH_SIZE == 2
    assert Config({"IMAGES_PER_GPU": 3, "GPU_COUNT": 4}).BATCH_SIZE == 12
    assert c.IMAGE_SHAPE == [1024, 1024, 3]


def test_every_key_has_a_comment():
    for key in KEYS.values():
        assert key.comment and key.comment.endswith("."), key.name


def test_misspelt_key_names_key_and_closest(tmp_path):
    path = write(tmp_path, "bad.yaml", "RPN_ANCHOR_SCALE: [8, 16, 32, 64, 128]\n")
    with pytest.raises(ConfigError) as err:
        Config.from_yaml(path)
    last_line = str(err.value).splitlines()[-1]
    assert "RPN_ANCHOR_SCALE" in last_line and "did you mean RPN_ANCHOR_SCALES" in last_line


def test_wrong_type_and_range_name_key_value_expected(tmp_path):
    with pytest.raises(ConfigError) as err:
        Config.from_yaml(write(tmp_path, "a.yaml", "IMAGES_PER_GPU: two\n"))
    assert str(err.value).splitlines()[-1] == "IMAGES_PER_GPU='two': expected an integer >= 1"
    with pytest.raises(ConfigError) as err:
        Config({"RPN_POSITIVE_IOU": 1.5})
    assert "RPN_POSITIVE_IOU=1.5" in str(err.value) and "[0, 1]" in str(err.value)
    with pytest.raises(ConfigError, match="IMAGE_MAX_DIM"):
        Config({"IMAGE_MAX_DIM": 100})


def test_base_inheritance_and_overrides(tmp_path):
    write(tmp_path, "base.yaml", "IMAGES_PER_GPU: 4\nLOSS_WEIGHTS: {mask_loss: 0.5}\nNAME: base\n")
    child = write(tmp_path, "child.yaml", "_BASE_: base.yaml\nNAME: child\nLOSS_WEIGHTS: {rpn_class_loss: 2.0}\n")
    c = Config.from_yaml(child, overrides=["RPN_ANCHOR_RATIOS=[0.5,1,2]", "GPU_COUNT=2"])
    assert c.NAME == "child" and c.IMAGES_PER_GPU == 4 and c.BATCH_SIZE == 8
    assert c.RPN_ANCHOR_RATIOS == [0.5, 1.0, 2.0]
    assert c.LOSS_WEIGHTS["mask_loss"] == 0.5 and c.LOSS_WEIGHTS["rpn_class_loss"] == 2.0
    assert c.LOSS_WEIGHTS["rcnn_bbox_loss"] == 1.0


def test_override_unknown_key():
    with pytest.raises(ConfigError) as err:
        Config().with_overrides(["IMAGES_PER_GUP=2"])
    assert "IMAGES_PER_GPU" in str(err.value).splitlines()[-1]


def test_malformed_yaml_names_file_and_line(tmp_path):
    path = write(tmp_path, "broken.yaml", "NAME: a\nIMAGES_PER_GPU: [1, 2\n")
    with pytest.raises(ConfigError) as err:
        Config.from_yaml(path)
    assert "broken.yaml" in str(err.value) and "line" in str(err.value)


def test_yaml_cannot_run_code(tmp_path):
    path = write(tmp_path, "evil.yaml", "NAME: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(ConfigError):
        Config.from_yaml(path)


def test_dump_round_trip(tmp_path):
    c = Config({"NAME": "x", "RPN_ANCHOR_SCALES": [8, 16, 32, 64, 128]})
    c.dump(tmp_path / "config.yaml")
    assert Config.from_yaml(tmp_path / "config.yaml") == c


def test_shipped_configs_load():
    paths = sorted((REPO / "configs").glob("*.yaml"))
    assert paths, "configs/ holds no YAML"
    for path in paths:
        Config.from_yaml(path)
