"""The keras.applications backbones build into a detector, name their stages for layer
selection, and freeze BatchNorm when TRAIN_BN is false."""
import numpy as np
import pytest
import keras

from detection.modeling.detector import Detector
from tests.model_fixtures import batch, tiny_config


@pytest.mark.parametrize("backbone, last_stage_layer", [
    ("resnet50", "conv5_block3_out"),
    ("mobilenetv2", "conv5_out_relu"),
])
def test_application_backbone_detector_predicts(backbone, last_stage_layer):
    config = tiny_config(BACKBONE=backbone, TRAIN_BN=False, MEAN_PIXEL=[127.5] * 3, PIXEL_STD=[127.5] * 3)
    detector = Detector(config, batch_size=1, training=False)
    model = detector.inference_model
    names = [layer.name for layer in model.layers]
    assert last_stage_layer in names
    for stage in ("conv2_", "conv3_", "conv4_", "conv5_"):
        assert any(n.startswith(stage) for n in names), stage
    batch_norms = [l for l in model.layers if isinstance(l, keras.layers.BatchNormalization)]
    assert batch_norms and not any(l.trainable for l in batch_norms)
    inputs = batch(config, [[]])
    out = model.predict({k: inputs[k] for k in ("image", "image_meta")}, verbose=0)
    assert out["boxes"].shape == (1, config.DETECTION_MAX_INSTANCES, 4)
    assert np.all(np.isfinite(out["scores"]))


@pytest.mark.parametrize("train_bn", [False, True])
def test_tiny_backbone_batch_norm_follows_train_bn(train_bn):
    detector = Detector(tiny_config(TRAIN_BN=train_bn), batch_size=1, training=False)
    batch_norms = [l for l in detector.inference_model.layers if isinstance(l, keras.layers.BatchNormalization)]
    assert len(batch_norms) == 12  # conv1, 2 in stage 2 (identity shortcut), 3 in each of stages 3-5
    assert all(l.trainable == train_bn for l in batch_norms)
