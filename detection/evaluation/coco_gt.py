"""COCO ground truth built from records, for datasets without a COCO JSON (VOC, shapes).

COCO datasets are evaluated against their own annotation file (true mask areas, the
original crowd regions); this is for the rest. Conventions of the built GT:
  bbox: [x, y, w, h] from the record's [y1, x1, y2, x2] ORIGINAL-image pixel boxes.
  area: the box area (w * h), so small/medium/large are decided by boxes, not by masks.
  iscrowd: the record's crowd flag, or'ed with VOC's difficult flag: COCOeval never counts
      a detection matching a crowd region, the nearest COCO notion of VOC's "neither a
      true nor a false positive". (A crowd region matches by intersection over the
      detection's area, not by IoU, so this is close to, not the same as, VOC's rule.)
  segmentation: the record's, when it has them (polygons or RLE); for synthetic records the
      rendered visible masks as RLE; else none (bbox only).
  category_id: the dataset's own ids (``category_ids[k - 1]`` for class k).
"""

import numpy as np

from detection.evaluation.results import encode_masks


def coco_gt_from_records(records, class_names, category_ids):
    """A COCO GT dict {"images", "annotations", "categories"} for ``records``.

    records: Record objects (detection.data.records): image_id, height, width, path,
        boxes [N, 4] [y1, x1, y2, x2] original-image pixels, class_ids [N] 1..K,
        iscrowd [N] bool, difficult [N] bool, segmentations None or N COCO segmentations.
    class_names, category_ids: K names and K dataset ids; index k - 1 is class k.
    Annotation ids run 1, 2, ... in record order.
    """
    images, annotations = [], []
    for record in records:
        images.append({"id": int(record.image_id), "height": int(record.height), "width": int(record.width),
                       "file_name": record.path or ""})
        boxes = np.asarray(record.boxes, dtype=np.float64).reshape(-1, 4)
        crowd = np.asarray(record.iscrowd, dtype=bool) | np.asarray(record.difficult, dtype=bool)
        segmentations = record.segmentations
        if segmentations is None and hasattr(record.synthetic, "visible_masks"):
            segmentations = encode_masks(record.synthetic.visible_masks())
        for i, ((y1, x1, y2, x2), class_id) in enumerate(zip(boxes, record.class_ids)):
            annotation = {
                "id": len(annotations) + 1,
                "image_id": int(record.image_id),
                "category_id": int(category_ids[int(class_id) - 1]),
                "bbox": [float(x1), float(y1), float(x2 - x1), float(y2 - y1)],
                "area": float((x2 - x1) * (y2 - y1)),
                "iscrowd": int(crowd[i]),
            }
            if segmentations is not None:
                annotation["segmentation"] = segmentations[i]
            annotations.append(annotation)
    categories = [{"id": int(c), "name": str(n)} for c, n in zip(category_ids, class_names)]
    return {"images": images, "annotations": annotations, "categories": categories}
