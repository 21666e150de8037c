"""Datasets (COCO JSON, Pascal VOC XML, synthetic shapes) and the tf.data input pipeline."""
