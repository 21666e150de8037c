"""Small COCO GT and results built in code, for cases whose AP can be worked out by hand."""

import numpy as np


def box_gt(images, annotations, categories):
    """A COCO GT dict. images: {image_id: (height, width)}; annotations: (image_id,
    category_id, [x, y, w, h]) tuples (area w * h, not crowd, the box as its polygon);
    categories: {id: name}."""
    return {
        "images": [{"id": i, "height": h, "width": w, "file_name": f"{i}.jpg"} for i, (h, w) in images.items()],
        "annotations": [{"id": n + 1, "image_id": i, "category_id": c, "bbox": list(b), "area": b[2] * b[3],
                         "iscrowd": 0, "segmentation": [box_polygon(b)]} for n, (i, c, b) in enumerate(annotations)],
        "categories": [{"id": c, "name": name} for c, name in categories.items()],
    }


def box_polygon(xywh):
    x, y, w, h = xywh
    return [x, y, x + w, y, x + w, y + h, x, y + h]


def result(image_id, category_id, bbox, score):
    return {"image_id": image_id, "category_id": category_id, "bbox": list(bbox), "score": score}


# Two 200x200 images with GT, one without; category 5 "cat" (2 boxes), 7 "dog" (1 box),
# 9 "cow" (no GT at all). Every box is 50x50 (area 2500: "medium", 32^2 < a < 96^2).
CAT_A, CAT_B, DOG = (10, 10, 50, 50), (100, 100, 50, 50), (20, 120, 50, 50)
SMALL_GT = box_gt(
    images={1: (200, 200), 2: (200, 200), 3: (200, 200)},
    annotations=[(1, 5, CAT_A), (2, 5, CAT_B), (2, 7, DOG)],
    categories={5: "cat", 7: "dog", 9: "cow"},
)
PERFECT = [result(1, 5, CAT_A, 0.8), result(2, 5, CAT_B, 0.7), result(2, 7, DOG, 0.9)]


def assert_same_metrics(a, b, tolerance=1e-12):
    """The two backends' metrics agree within float rounding and to the printed 3 decimals."""
    assert a.keys() == b.keys()
    for name in a:
        if name == "per_category":
            assert a[name].keys() == b[name].keys()
            pairs = [(a[name][k], b[name][k], f"per_category {k}") for k in a[name]]
        else:
            pairs = [(a[name], b[name], name)]
        for x, y, what in pairs:
            assert abs(x - y) <= tolerance, (what, x, y)
            assert f"{x:.3f}" == f"{y:.3f}", (what, x, y)


def yxyx(xywh):
    x, y, w, h = xywh
    return np.array([y, x, y + h, x + w], np.float32)
