from detection.engine.ap_callback import CocoApCallback
from detection.modeling.detector import Detector


def test_epoch_logs_get_coco_ap_of_the_current_weights(trained_shapes):
    config, weights, dataset = trained_shapes
    detector = Detector(config, training=False)
    callback = CocoApCallback(lambda: detector, dataset, num_images=len(dataset.records))
    untrained = {}
    callback.on_epoch_end(0, untrained)
    detector.load_weights(weights)
    trained = {}
    callback.on_epoch_end(1, trained)
    # The fixture model finds every box of its images at IoU >= 0.87: AP50 is 1.
    assert trained["val_bbox_AP50"] == 1.0 and trained["val_bbox_AP"] > 0.7
    assert untrained["val_bbox_AP"] < 0.1
    assert "val_segm_AP" in trained


def test_ap_metrics_are_maximised_and_losses_minimised():
    from detection.engine.callbacks import monitor_mode

    for name in ("val_bbox_AP", "val_bbox_AP50", "val_segm_AP", "AP", "val_mAP", "val_accuracy"):
        assert monitor_mode(name) == "max", name
    for name in ("val_loss", "loss", "val_rpn_class_loss", "val_miss_match_gt_num", "val_gt_match_min_iou"):
        assert monitor_mode(name) == "min", name
