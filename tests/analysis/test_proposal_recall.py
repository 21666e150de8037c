"""Proposal recall over ranked proposals, against hand-computed values."""
import numpy as np

from detection.analysis.proposal_recall import best_iou_over_top_k, proposal_recall, recall_for_table, summarize_recall


def test_docstring_example_and_top_k_prefixes():
    best = best_iou_over_top_k([[0, 0, 10, 10]], [[0, 0, 10, 5], [0, 0, 10, 10]], top_ks=(1, 2, 5))
    np.testing.assert_allclose(best, [[0.5, 1.0, 1.0, 1.0]])


def test_padding_rows_and_no_proposals():
    best = best_iou_over_top_k([[0, 0, 10, 10]], [[0, 0, 0, 0], [0, 0, 10, 10]], top_ks=(1,))
    np.testing.assert_allclose(best, [[0.0, 1.0]])
    assert best_iou_over_top_k([[0, 0, 10, 10]], np.zeros((0, 4)), top_ks=(1, 2)).tolist() == [[0, 0, 0]]


def test_recall_summary_by_size_and_rcnn_misses():
    gts = [np.float32([[0, 0, 10, 10], [0, 0, 100, 100]]), np.float32([[50, 50, 250, 250]])]
    proposals = [np.float32([[0, 0, 100, 80], [0, 0, 10, 10]]),   # large at 0.8 first, small at rank 2
                 np.float32([[50, 50, 150, 250]])]                # the 200 x 200 box at 0.5
    best = proposal_recall(gts, proposals, top_ks=(1, 2))
    # 10 x 10 inside the 100 x 80 proposal: 100 / 8000.
    np.testing.assert_allclose(best, [[0.0125, 1, 1], [0.8, 0.8, 0.8], [0.5, 0.5, 0.5]])
    areas = np.array([100.0, 10000, 40000])
    s = summarize_recall(best, areas, top_ks=(1, 2))
    assert s["gt_num"] == 3 and s["recall"]["1"] == {"0.5": 2 / 3, "0.7": 1 / 3}
    assert s["recall"]["2"] == {"0.5": 1.0, "0.7": 2 / 3}
    assert s["rcnn_miss_match_gt_num"] == 0
    assert s["by_size"]["small"]["recall"]["1"]["0.5"] == 0.0 and s["by_size"]["large"]["gt_num"] == 2
    assert s["by_size"]["medium"]["gt_num"] == 0 and s["by_size"]["medium"]["recall"]["1"]["0.5"] is None
    s = summarize_recall(best[:, [0, 0]], areas, top_ks=(1,))  # only the top proposal
    assert s["rcnn_miss_match_gt_num"] == 1 and s["by_size"]["small"]["rcnn_miss_match_gt_num"] == 1


def test_table_rows_get_their_own_images_proposals_and_unpredicted_images_drop_out():
    from detection.analysis.anchor_stats import ImageBoxes, gt_table
    from detection.config import Config

    config = Config({"IMAGE_RESIZE_MODE": "square", "IMAGE_MIN_DIM": 128, "IMAGE_MAX_DIM": 256})
    images = [ImageBoxes(i, 64, 64, np.float32([[0, 0, 20, 20], [30, 30, 60, 50]]), np.zeros(2, bool))
              for i in range(3)]
    table, _ = gt_table(images, config)  # scale 2: input areas 1600 (medium) and 2400 (medium)
    proposals = {0: np.float32([[0, 0, 20, 20]]), 2: np.float32([[30, 30, 60, 50], [0, 0, 20, 10]])}
    best = recall_for_table(table, proposals, top_ks=(1,))
    np.testing.assert_allclose(best[[0, 1, 4, 5]], [[1, 1], [0, 0], [0, 0.5], [1, 1]])
    assert np.isnan(best[2:4]).all()
    s = summarize_recall(best, table.heights * table.widths, top_ks=(1,))
    # rcnn miss: the [0, 0] box; 0.5 over all is reached.
    assert s["gt_num"] == 4 and s["by_size"]["medium"]["gt_num"] == 4 and s["rcnn_miss_match_gt_num"] == 1


def test_predictions_are_keyed_by_their_records_position():
    from detection.analysis.anchor_stats import ImageBoxes
    from detection.analysis.proposal_recall import proposals_by_image

    records = [ImageBoxes(image_id, 10, 10, np.zeros((0, 4)), np.zeros(0, bool)) for image_id in (42, 7, 99)]
    predictions = iter([{"image_id": 99, "proposals": [[0, 0, 1, 1]]}, {"image_id": 42, "proposals": np.zeros((0, 4))}])
    got = proposals_by_image(predictions, records)
    assert sorted(got) == [0, 2] and got[2].tolist() == [[0, 0, 1, 1]] and got[0].shape == (0, 4)
