"""tools/matterport_config.py: matterport's config.display() output -> our config."""
import numpy as np

from detection.config import Config
from tests.tools import load_tool

# What matterport's Config.display() prints ("{:30} {}" per attribute) for a shapes-style
# subclass: tuples, NumPy arrays, a dict, None, bare strings.
DISPLAY = """
Configurations:
BACKBONE                       resnet50
BACKBONE_STRIDES               [4, 8, 16, 32, 64]
BATCH_SIZE                     8
BBOX_STD_DEV                   [0.1 0.1 0.2 0.2]
COMPUTE_BACKBONE_SHAPE         None
DETECTION_MAX_INSTANCES        100
DETECTION_MIN_CONFIDENCE       0.9
DETECTION_NMS_THRESHOLD        0.3
FPN_CLASSIF_FC_LAYERS_SIZE     1024
GPU_COUNT                      1
GRADIENT_CLIP_NORM             5.0
IMAGES_PER_GPU                 8
IMAGE_CHANNEL_COUNT            3
IMAGE_MAX_DIM                  128
IMAGE_META_SIZE                16
IMAGE_MIN_DIM                  128
IMAGE_MIN_SCALE                0
IMAGE_RESIZE_MODE              square
IMAGE_SHAPE                    [128 128   3]
LEARNING_MOMENTUM              0.9
LEARNING_RATE                  0.001
LOSS_WEIGHTS                   {'rpn_class_loss': 1.0, 'rpn_bbox_loss': 1.0, 'mrcnn_class_loss': 1.0, \
'mrcnn_bbox_loss': 1.0, 'mrcnn_mask_loss': 2.0}
MASK_POOL_SIZE                 14
MASK_SHAPE                     [28, 28]
MAX_GT_INSTANCES               100
MEAN_PIXEL                     [123.7 116.8 103.9]
MINI_MASK_SHAPE                (56, 56)
NAME                           shapes
NUM_CLASSES                    4
POOL_SIZE                      7
POST_NMS_ROIS_INFERENCE        1000
POST_NMS_ROIS_TRAINING         2000
PRE_NMS_LIMIT                  6000
ROI_POSITIVE_RATIO             0.33
RPN_ANCHOR_RATIOS              [0.5, 1, 2]
RPN_ANCHOR_SCALES              (8, 16, 32, 64, 128)
RPN_ANCHOR_STRIDE              1
RPN_BBOX_STD_DEV               [0.1 0.1 0.2 0.2]
RPN_NMS_THRESHOLD              0.7
RPN_TRAIN_ANCHORS_PER_IMAGE    256
STEPS_PER_EPOCH                100
TOP_DOWN_PYRAMID_SIZE          256
TRAIN_BN                       None
TRAIN_ROIS_PER_IMAGE           32
USE_MINI_MASK                  True
USE_RPN_ROIS                   True
VALIDATION_STEPS               5
WEIGHT_DECAY                   0.0001
MY_OWN_SETTING                 42
"""


def test_display_output_becomes_a_config_of_the_same_values(tmp_path, capsys):
    (tmp_path / "log.txt").write_text("Epoch 1/30 ...\n" + DISPLAY + "\nmore training log\n")
    assert load_tool("matterport_config").main([str(tmp_path / "log.txt"), "--output", str(tmp_path / "m.yaml")]) == 0
    out = capsys.readouterr().out
    assert "BACKBONE resnet50 -> matterport_resnet50" in out and "MY_OWN_SETTING: not a config key" in out
    config = Config.from_yaml(tmp_path / "m.yaml")
    assert config.BACKBONE == "matterport_resnet50" and config.RPN_HEAD == "matterport"
    assert config.BOX_FRAME == "normalized"
    assert (config.NUM_CLASSES, config.IMAGE_MIN_DIM, config.IMAGE_MAX_DIM, config.IMAGES_PER_GPU) == (4, 128, 128, 8)
    assert config.RPN_ANCHOR_SCALES == [8, 16, 32, 64, 128] and config.MINI_MASK_SHAPE == [56, 56]
    assert config.DETECTION_MIN_CONFIDENCE == 0.9 and config.TRAIN_ROIS_PER_IMAGE == 32 and config.TRAIN_BN is True
    assert config.LOSS_WEIGHTS["mask_loss"] == 2.0 and config.LOSS_WEIGHTS["rcnn_class_loss"] == 1.0
    np.testing.assert_allclose(config.MEAN_PIXEL, [123.7, 116.8, 103.9])
    text = (tmp_path / "m.yaml").read_text()
    assert "RPN_NMS_THRESHOLD" not in text  # matterport.yaml's own value: not repeated


def test_a_value_that_does_not_fit_is_one_line(tmp_path, capsys):
    (tmp_path / "log.txt").write_text(DISPLAY.replace("IMAGE_MAX_DIM                  128", "IMAGE_MAX_DIM  100"))
    assert load_tool("matterport_config").main([str(tmp_path / "log.txt"), "--output", str(tmp_path / "m.yaml")]) == 2
    assert "IMAGE_MAX_DIM" in capsys.readouterr().err and not (tmp_path / "m.yaml").exists()
