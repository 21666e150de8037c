"""The keras.applications backbones build into a detector, name their stages for layer
selection, and freeze BatchNorm when TRAIN_BN is false."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from detection.modeling.backbones import resnet_tiny
from detection.modeling.detector import Detector
from tests.model_fixtures import batch, tiny_config


@pytest.mark.parametrize("backbone, last_stage_layer", [
    ("resnet50", "conv5_block3_out"),
    ("mobilenetv2", "conv5_out_relu"),
])
def test_application_backbone_detector_predicts(backbone, last_stage_layer):
    config = tiny_config(BACKBONE=backbone, TRAIN_BN=False)
    detector = Detector(config, batch_size=1, training=False)
    model = detector.inference_model
    names = [layer.name for layer in model.layers]
    assert last_stage_layer in names
    for stage in ("conv2_", "conv3_", "conv4_", "conv5_"):
        assert any(n.startswith(stage) for n in names), stage
    batch_norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert batch_norms and not any(layer.trainable for layer in batch_norms)
    inputs = batch(config, [[]])
    out = model.predict({k: inputs[k] for k in ("image", "image_meta")}, verbose=0)
    assert out["boxes"].shape == (1, config.DETECTION_MAX_INSTANCES, 4)
    assert np.all(np.isfinite(out["scores"]))


@pytest.mark.parametrize("train_bn", [False, True])
def test_tiny_backbone_batch_norm_follows_train_bn(train_bn):
    detector = Detector(tiny_config(TRAIN_BN=train_bn), batch_size=1, training=False)
    batch_norms = [layer for layer in detector.inference_model.layers
                   if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(batch_norms) == 12  # conv1, 2 in stage 2 (identity shortcut), 3 in each of stages 3-5
    assert all(layer.trainable == train_bn for layer in batch_norms)


@pytest.mark.parametrize("width", [4, 8])
def test_tiny_backbone_strided_shortcut_has_the_exact_weight_gradient(width):
    # oneDNN's 1x1 stride-2 weight gradient, with fewer input channels than its SIMD block, crashes
    # (AVX-512, 1 image a batch) or is wrong (AVX2): the shortcut subsamples, then convolves.
    image = keras.Input((64, 64, 3), batch_size=1)
    features = resnet_tiny(image, width, train_bn=True)
    conv = keras.Model(image, features).get_layer("conv3_block1_0_conv")
    probe = keras.Model(image, [features[0], conv.output])  # stage 2 (the shortcut's input), shortcut
    x = tf.random.stateless_normal([1, 64, 64, 3], seed=[1, 2])
    upstream = tf.random.stateless_normal(conv.output.shape, seed=[3, 4])

    @tf.function
    def gradient():
        with tf.GradientTape() as tape:
            stage2, shortcut = probe(x, training=True)
            loss = tf.reduce_sum(shortcut * upstream)
        return stage2, tape.gradient(loss, conv.kernel)

    stage2, grad = gradient()
    expected = np.einsum("hwi,hwo->io", stage2.numpy()[0, ::2, ::2], upstream.numpy()[0])
    np.testing.assert_allclose(grad.numpy()[0, 0], expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("backbone, preprocess", [
    ("resnet50", keras.applications.resnet.preprocess_input),
    ("resnet101", keras.applications.resnet.preprocess_input),
    ("mobilenetv2", keras.applications.mobilenet_v2.preprocess_input),
])
def test_each_backbone_gets_the_input_its_imagenet_weights_expect(backbone, preprocess):
    """With MEAN_PIXEL / PIXEL_STD left to the backbone, the model's normalisation equals
    keras.applications' own preprocess_input for those weights (caffe BGR for the ResNets,
    [-1, 1] for MobileNetV2)."""
    from detection.modeling.backbones import input_convention
    from detection.modeling.normalization import NormalizeImage

    convention = input_convention(tiny_config(BACKBONE=backbone))
    image = np.random.default_rng(0).uniform(0, 255, (2, 16, 24, 3)).astype("float32")
    ours = NormalizeImage(convention.mean, convention.std, to_bgr=convention.to_bgr)(image)
    np.testing.assert_allclose(np.asarray(ours), np.asarray(preprocess(image.copy())), atol=1e-4)


def test_explicit_mean_and_std_replace_the_convention_but_not_the_channel_order():
    from detection.modeling.backbones import input_convention

    convention = input_convention(tiny_config(BACKBONE="resnet50", MEAN_PIXEL=[1, 2, 3], PIXEL_STD=[4, 5, 6]))
    assert (convention.mean, convention.std, convention.to_bgr) == ((1, 2, 3), (4, 5, 6), True)
    matterport = input_convention(tiny_config(BACKBONE="matterport_resnet50"))
    assert (matterport.mean, matterport.std, matterport.to_bgr) == ((123.7, 116.8, 103.9), (1.0, 1.0, 1.0), False)
