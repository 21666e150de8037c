"""Inference precision (detection/engine/precision.py): what runs in bfloat16 and what stays
float32, the CPU-flag warning, and bfloat16 detections against float32 ones on a trained model.
Nothing here depends on the CPU's kernels: dtypes are read from the built graph, and the
bfloat16 comparison has a tolerance far above any kernel's rounding."""

import cv2
import keras
import numpy as np
import pytest
import tensorflow as tf

from detection.engine import precision
from detection.engine.predictor import Predictor, inference_detector
from tests.model_fixtures import batch, tiny_config
from tests.tools import load_tool


def test_inference_precision_follows_mixed_precision_and_the_flag():
    assert [precision.inference_precision(tiny_config(MIXED_PRECISION=m)) for m in ("none", "float16", "bfloat16")] \
        == ["float32", "float32", "bfloat16"]
    assert precision.with_precision(tiny_config(), "bfloat16").MIXED_PRECISION == "bfloat16"
    assert precision.with_precision(tiny_config(MIXED_PRECISION="bfloat16"), "float32").MIXED_PRECISION == "none"
    assert precision.with_precision(tiny_config(MIXED_PRECISION="float16"), None).MIXED_PRECISION == "float16"
    with pytest.raises(ValueError, match="precision must be one of"):
        precision.with_precision(tiny_config(), "float16")


def test_cpu_flags_reads_x86_flags_and_arm_features(tmp_path):
    x86 = tmp_path / "x86"
    x86.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16\nbogomips\t: 4890\n")
    arm = tmp_path / "arm"
    arm.write_text("processor\t: 0\nFeatures\t: fp asimd bf16 i8mm\n")
    assert precision.cpu_flags(x86) == {"fpu", "avx2", "avx512f", "avx512_bf16"}
    assert precision.has_native_bfloat16(precision.cpu_flags(x86))
    assert precision.has_native_bfloat16(precision.cpu_flags(arm))
    assert not precision.has_native_bfloat16({"avx2", "avx512f", "fma"})
    assert precision.cpu_flags(tmp_path / "absent") == set()


def test_warning_only_for_bfloat16_without_native_units(capsys):
    assert precision.bfloat16_warning("float32", {"avx2"}) is None
    assert precision.bfloat16_warning("bfloat16", {"avx512f", "avx512_bf16"}) is None
    assert precision.bfloat16_warning("bfloat16", {"amx_bf16"}) is None
    line = precision.warn_if_emulated(tiny_config(MIXED_PRECISION="bfloat16"), {"avx2", "avx512f"})
    assert line.startswith("warning: bfloat16") and "\n" not in line
    assert capsys.readouterr().err == line + "\n"
    assert precision.warn_if_emulated(tiny_config(), {"avx2"}) is None
    assert capsys.readouterr().err == ""


def _graph_ops(concrete):
    """Every op of a concrete function's graph, nested functions (while loops, map_fn) included."""
    graph_def = concrete.graph.as_graph_def()
    nodes = list(graph_def.node)
    for function in graph_def.library.function:
        nodes.extend(function.node_def)
    return nodes


def _op_dtypes(concrete):
    """{op type: set of the "T" dtypes it runs in} and the CropAndResize / NMS input dtypes."""
    by_type = {}
    for node in _graph_ops(concrete):
        for key in ("T", "dtype"):
            if key in node.attr and node.attr[key].type:
                by_type.setdefault(node.op, set()).add(tf.dtypes.as_dtype(node.attr[key].type).name)
    return by_type


def _traced_inference(config):
    detector = inference_detector(config, batch_size=1)
    inputs = batch(config, [[]])
    inputs = {k: tf.constant(inputs[k]) for k in ("image", "image_meta")}
    fn = tf.function(lambda x: detector.inference_model(x, training=False))
    return detector, fn.get_concrete_function(inputs), fn(inputs)


@pytest.mark.parametrize("roi_align_mode", ["crop_and_resize", "gather"])
def test_bfloat16_runs_convolutions_in_bfloat16_and_boxes_in_float32(roi_align_mode):
    config = tiny_config(MIXED_PRECISION="bfloat16", ROI_ALIGN_MODE=roi_align_mode)
    detector, concrete, outputs = _traced_inference(config)
    assert keras.config.dtype_policy().name == "float32"  # set for the build only
    model = detector.inference_model
    convs = [layer for layer in model.layers if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense))]
    # Every head's last layer multiplies in float32 (its bfloat16 input cast up): logits and
    # deltas are never rounded to bfloat16; every other conv and dense layer runs bfloat16.
    outputs_f32 = {"rpn_class_raw", "rpn_bbox_pred", "rcnn_class_logits", "rcnn_bbox_fc", "mask_logits"}
    assert outputs_f32 <= {layer.name for layer in convs}
    assert all(layer.compute_dtype == ("float32" if layer.name in outputs_f32 else "bfloat16") for layer in convs)
    assert len(convs) - len(outputs_f32) >= 10
    assert all(w.dtype == "float32" for layer in convs for w in layer.weights)  # variables stay float32
    # RoIAlign takes its RoIs as they are (float32), not cast to bfloat16 by Keras.
    for layer in model.layers:
        if type(layer).__name__ == "PyramidROIAlign":
            assert layer.compute_dtype == "bfloat16" and not layer.autocast, layer.name
    for name in ("inference_proposals", "detections", "proposals_input"):
        assert model.get_layer(name).compute_dtype == "float32", name
    dtypes = _op_dtypes(concrete)
    assert "bfloat16" in dtypes["Conv2D"] and "bfloat16" in dtypes.get("MatMul", dtypes.get("BatchMatMulV2"))
    # NMS, decoding and RoIAlign's sampling take float32 only.
    for op in ("CombinedNonMaxSuppression", "NonMaxSuppressionV5", "NonMaxSuppressionV3", "CropAndResize",
               "Exp", "TopKV2", "GatherV2", "Floor"):
        assert "bfloat16" not in dtypes.get(op, set()), op
    if roi_align_mode == "crop_and_resize":
        assert dtypes["CropAndResize"] == {"float32"}
    assert "CombinedNonMaxSuppression" in {node.op for node in _graph_ops(concrete)}
    for key in ("boxes", "boxes_input", "scores", "proposals", "masks"):
        assert outputs[key].dtype == tf.float32, key


def test_float32_config_has_no_bfloat16_op():
    _, concrete, outputs = _traced_inference(tiny_config())
    assert not any("bfloat16" in types for types in _op_dtypes(concrete).values())
    assert outputs["masks"].dtype == tf.float32


def test_bfloat16_detections_match_float32_on_the_trained_model(trained_shapes):
    """The same weights in both precisions: the same detections (class, box within 1 px of
    64, score within 0.02) and masks at IoU >= 0.95 with the float32 ones (0.85 while RoIAlign
    sampled at bfloat16-rounded RoIs)."""
    config, weights, dataset = trained_shapes
    config = config.replace(DETECTION_MIN_CONFIDENCE=0.5)
    single = Predictor.from_weights(config, weights, log=None)
    half = Predictor.from_weights(config.replace(MIXED_PRECISION="bfloat16"), weights, log=None)
    assert half.model.get_layer("mask_conv1").compute_dtype == "bfloat16"
    compared = 0
    for got, expected in zip(half.predict_records(dataset), single.predict_records(dataset)):
        assert len(got["boxes"]) == len(expected["boxes"]), got["image_id"]
        np.testing.assert_array_equal(got["class_ids"], expected["class_ids"])
        np.testing.assert_allclose(got["boxes"], expected["boxes"], atol=1.0)
        np.testing.assert_allclose(got["scores"], expected["scores"], atol=0.02)
        for a, b in zip(got["masks"].astype(bool), expected["masks"].astype(bool)):
            # Not an empty mask. The smallest shape's mask has 49 px on an AMX CPU, above 50 on others.
            assert b.sum() >= 20 and (a & b).sum() / (a | b).sum() >= 0.95
        assert got["boxes"].dtype == np.float32 and got["scores"].dtype == np.float32
        compared += len(got["boxes"])
    assert compared >= 2 * len(dataset.records)


def test_infer_tool_warns_in_one_line_for_emulated_bfloat16(trained_shapes, tmp_path, monkeypatch, capsys):
    config, weights, dataset = trained_shapes
    image, _ = dataset.records[0].synthetic.render()
    assert cv2.imwrite(str(tmp_path / "shape.png"), np.ascontiguousarray(image[:, :, ::-1]))
    monkeypatch.setattr(precision, "cpu_flags", lambda path="/proc/cpuinfo": {"avx2", "fma", "avx512f"})
    common = ["--config", str(weights.parent / "config.yaml"), "--weights", str(weights), "--no-pictures",
              str(tmp_path / "shape.png")]
    # The config asks for bfloat16 (no --precision): warned once, and it still runs.
    status = load_tool("infer").main(common + ["--output", str(tmp_path / "a"), "--set", "MIXED_PRECISION=bfloat16"])
    err = capsys.readouterr().err
    assert status == 0
    assert [line for line in err.splitlines() if "bfloat16" in line] == [precision.bfloat16_warning("bfloat16", set())]
    # --precision float32 overrides the config: no warning.
    status = load_tool("infer").main(common + ["--output", str(tmp_path / "b"), "--set", "MIXED_PRECISION=bfloat16",
                                               "--precision", "float32"])
    assert status == 0 and "bfloat16" not in capsys.readouterr().err


def test_eval_coco_refuses_precision_in_results_mode(tmp_path, capsys):
    with pytest.raises(SystemExit):
        load_tool("eval_coco").parse_args(["--annotations", "gt.json", "--results", "dt.json",
                                           "--precision", "bfloat16"])
    assert "--precision" in capsys.readouterr().err


def test_export_tool_flag_builds_a_bfloat16_model(monkeypatch, tmp_path):
    """tools/export.py --precision bfloat16 reaches the Detector it exports."""
    built = {}

    def fake_export(config, weights, output, class_names, category_ids, exclude=()):
        built["precision"] = precision.inference_precision(config)

    import detection.export

    monkeypatch.setattr(detection.export, "export_from_weights", fake_export)
    monkeypatch.setattr(precision, "cpu_flags", lambda path="/proc/cpuinfo": {"avx512_bf16"})
    yaml = tmp_path / "c.yaml"
    tiny_config(CLASS_NAMES=["a", "b"]).dump(yaml)
    assert load_tool("export").main(["--config", str(yaml), "--weights", "w.weights.h5", "--output",
                                     str(tmp_path / "out"), "--precision", "bfloat16"]) == 0
    assert built == {"precision": "bfloat16"}
