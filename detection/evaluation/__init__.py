"""Evaluation: COCO AP (pycocotools or faster-coco-eval) and Pascal VOC mAP.

  coco.py       COCO box/mask AP of a results list against a GT file, both backends
  results.py    model detections -> COCO results records; checking records against the GT
  coco_gt.py    COCO ground truth built from records (datasets without a COCO JSON)
  detector_eval.py  a predictor over a dataset: predict, convert, evaluate (COCO or VOC)
  voc.py        VOC mAP at IoU 0.5, all-point and 11-point, difficult boxes ignored
  tables.py     the per-category AP text table
  json_io.py    reading JSON with file/line/column errors, writing it atomically
  errors.py     EvaluationError, the one error type users see

Nothing here imports TensorFlow: evaluating a results file is quick and light.
"""
