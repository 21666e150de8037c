"""bench/profile_step.py's trace arithmetic: interval union and layer names from op names."""


import profile_step


def test_covered_is_the_length_of_the_union():
    assert profile_step.covered([]) == 0
    assert profile_step.covered([(0, 10), (5, 15), (20, 25), (21, 22)]) == 20
    assert profile_step.covered([(20, 25), (0, 10), (10, 12)]) == 17


def test_layer_of_strips_the_keras_call_suffix():
    name = "StatefulPartitionedCall/detector_training_1/fpn_p2_1/BiasAdd"
    assert profile_step.layer_of(name) == "fpn_p2"
    grad = ("StatefulPartitionedCall/gradient_tape/detector_training_1/rpn_conv_shared_7/convolution/"
            "Conv2DBackpropFilter")
    assert profile_step.layer_of(grad) == "rpn_conv_shared"
    assert profile_step.layer_of("StatefulPartitionedCall/sgd/Mul_261") == "sgd"
    inference = "StatefulPartitionedCall/detector_inference_1/rpn_conv_shared_3/convolution"
    assert profile_step.layer_of(inference) == "rpn_conv_shared"


def test_dense_ops_are_convolutions_and_matmuls():
    assert profile_step.is_dense("_MklNativeFusedConv2D")
    assert profile_step.is_dense("_MklNativeConv2DBackpropFilterWithBias")
    assert profile_step.is_dense("_MklMatMul")
    assert not profile_step.is_dense("NonMaxSuppressionV3")
    assert not profile_step.is_dense("CropAndResize")
