"""COCO box and mask AP of a results list against a COCO ground-truth file.

Two backends compute the same numbers: pycocotools (the reference) and faster-coco-eval
(the same algorithm in C++). They agree to within float rounding (|difference| < 1e-12,
sums taken in another order) and so to the 3 printed decimals on every case of
tests/evaluation; faster-coco-eval is the default because it is several times faster
(bench/coco_eval_backends.py). Not bit-exact: compare with a tolerance, not with ==.

Example::

    metrics = evaluate_coco("instances_val2014.json", "detections.json", iou_types=("bbox", "segm"))
    metrics["bbox"]["AP"], metrics["segm"]["per_category"]["person"]

prints, per iou type, a header, COCOeval's standard 12-line summary and a per-category AP
table, and returns ``{iou_type: {"AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10",
"AR100", "ARs", "ARm", "ARl", "per_category": {category name: AP}}}``, floats in [0, 1].

-1 means "nothing to measure", exactly as COCOeval reports it: a category with no GT
instance (in the evaluated images, crowd regions aside) has AP -1 and is left out of the
means; an area range without any GT (say no small objects) gives APs/ARs -1. An empty
results list is not an error: every metric with GT to find is 0 (the rest -1), with an
EvaluationWarning. Images without GT take part (their detections are false positives);
categories never detected have AP 0.
"""

import contextlib
import io
import os
import warnings

from detection.evaluation.errors import EvaluationError, EvaluationWarning
from detection.evaluation.json_io import read_json
from detection.evaluation.results import check_results
from detection.evaluation.tables import format_ap_table

BACKENDS = ("pycocotools", "faster-coco-eval")
DEFAULT_BACKEND = "faster-coco-eval"
IOU_TYPES = ("bbox", "segm")
# The order of COCOeval.stats (its summarize() lines).
METRIC_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
_GT_FIELDS = ("id", "image_id", "category_id", "bbox", "area", "iscrowd")


def evaluate_coco(annotations, results, iou_types=None, backend=DEFAULT_BACKEND, image_ids=None, log=print):
    """COCO metrics of ``results`` against ``annotations``, per iou type.

    annotations: path of a COCO ground-truth JSON file, or its parsed dict.
    results: path of a COCO results JSON file, or the list of result records
        (``detections_to_coco_results`` makes them; boxes xywh in original-image pixels).
    iou_types: a tuple of "bbox", "segm" (segm needs an RLE "segmentation" in every record);
        None: bbox, plus segm when every record has a "segmentation".
    backend: "pycocotools" or "faster-coco-eval".
    image_ids: None for every GT image, or the ids of the images evaluated (e.g. the first
        N a model ran on: GT on the other images must not count as missed).
    log: called with each line of the printed tables; None prints nothing.
    Returns {iou_type: metrics} (see the module docstring). Raises EvaluationError.
    """
    if backend not in BACKENDS:
        raise EvaluationError(f"unknown backend {backend!r}; expected one of {', '.join(BACKENDS)}")
    source = "results"
    if isinstance(results, (str, os.PathLike)):
        source = os.fspath(results)
        results = read_json(results, "results file")
    if isinstance(iou_types, str):
        iou_types = (iou_types,)
    if iou_types is None:
        with_masks = isinstance(results, list) and bool(results) and all(
            isinstance(r, dict) and "segmentation" in r for r in results)
        iou_types = IOU_TYPES if with_masks else ("bbox",)
    for iou_type in iou_types:
        if iou_type not in IOU_TYPES:
            raise EvaluationError(f"unknown iou type {iou_type!r}; expected one of {', '.join(IOU_TYPES)}")
    gt = load_coco_gt(annotations, segm="segm" in iou_types)
    if image_ids is not None:
        image_ids = _check_image_ids(image_ids, gt)
    if isinstance(results, list) and not results:
        warnings.warn(f"{source}: no detections; every AP and AR is 0 (-1 where the GT has nothing to find)",
                      EvaluationWarning, stacklevel=2)

    metrics = {}
    for iou_type in iou_types:
        checked = check_results(results, gt, iou_type, source)
        evaluator, summary = run_cocoeval(gt, checked, iou_type, backend, image_ids)
        values = {name: float(v) for name, v in zip(METRIC_NAMES, evaluator.stats)}
        values["per_category"] = per_category_ap(evaluator, gt)
        metrics[iou_type] = values
        if log:
            count = len(image_ids) if image_ids is not None else len(gt["images"])
            log(f"COCO {iou_type} evaluation ({backend}): {count} images, {len(checked)} results from {source}")
            for line in summary:
                log(line)
            log(format_ap_table(values["per_category"]))
    return metrics


def load_coco_gt(annotations, segm=False):
    """The COCO GT dict from a path or a dict, checked enough that the backends cannot fail
    on it: lists of images, categories and annotations, each annotation with the fields
    COCOeval reads (plus "segmentation" when ``segm``). Raises EvaluationError."""
    source, gt = "annotations", annotations
    if isinstance(annotations, (str, os.PathLike)):
        source = os.fspath(annotations)
        gt = read_json(annotations, "annotations file")
    if not isinstance(gt, dict):
        raise EvaluationError(f"{source}: expected a COCO annotations object, got a {type(gt).__name__}")
    for key in ("images", "categories", "annotations"):
        if not isinstance(gt.get(key), list):
            raise EvaluationError(f"{source}: no {key!r} list (is this a COCO annotations file?)")
    fields = _GT_FIELDS + (("segmentation",) if segm else ())
    for key, required in (("images", ("id",)), ("categories", ("id", "name")), ("annotations", fields)):
        for i, item in enumerate(gt[key]):
            missing = [f for f in required if not isinstance(item, dict) or f not in item]
            if missing:
                raise EvaluationError(f"{source}: {key}[{i}] has no field {missing[0]!r}")
    return gt


def run_cocoeval(gt, results, iou_type, backend, image_ids=None):
    """Runs one backend's COCOeval: evaluate(), accumulate(), summarize().

    gt: the COCO GT dict; results: checked result records (``check_results``), possibly
    empty; image_ids: None (all GT images) or a sorted list of GT image ids.
    Returns (evaluator, summary): the backend's COCOeval object (``stats`` [12],
    ``eval["precision"]`` [T iou thresholds, R recall points, K categories, A areas,
    M max dets]) and the 12 lines of the standard summary table. The backends' own
    progress chatter is swallowed.
    """
    # COCOeval replaces GT polygons by RLE in each annotation dict, and loadRes adds "id",
    # "area", even "bbox" to each result: both work on copies, so a list can be run again.
    gt = {**gt, "annotations": [dict(a) for a in gt["annotations"]]}
    results = [dict(r) for r in results]
    gt.setdefault("info", {})  # pycocotools' loadRes reads it; COCO files may lack it
    if backend == "pycocotools":
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval

        with contextlib.redirect_stdout(io.StringIO()):
            coco_gt = _index(COCO(), gt)
            evaluator = COCOeval(coco_gt, _load_results(coco_gt, results, COCO), iou_type)
            _evaluate(evaluator, image_ids)
        table = io.StringIO()
        with contextlib.redirect_stdout(table):
            evaluator.summarize()
        lines = table.getvalue().splitlines()
    elif backend == "faster-coco-eval":
        from faster_coco_eval import COCO, COCOeval_faster

        lines = []
        coco_gt = _index(COCO(), gt)
        evaluator = COCOeval_faster(coco_gt, _load_results(coco_gt, results, COCO), iou_type,
                                    print_function=lines.append)
        _evaluate(evaluator, image_ids)
        lines.clear()
        evaluator.summarize()
    else:
        raise EvaluationError(f"unknown backend {backend!r}; expected one of {', '.join(BACKENDS)}")
    # faster-coco-eval adds AR@0.5 and AR@0.75 lines after the standard 12.
    return evaluator, lines[: len(METRIC_NAMES)]


def _index(coco, dataset):
    coco.dataset = dataset
    coco.createIndex()
    return coco


def _load_results(coco_gt, results, coco_class):
    if results:
        return coco_gt.loadRes(results)
    # pycocotools' loadRes fails on an empty list (it reads results[0]): an empty index.
    empty = {"images": coco_gt.dataset["images"], "categories": coco_gt.dataset["categories"], "annotations": []}
    return _index(coco_class(), empty)


def _evaluate(evaluator, image_ids):
    if image_ids is not None:
        evaluator.params.imgIds = list(image_ids)
    evaluator.evaluate()
    evaluator.accumulate()


def per_category_ap(evaluator, gt):
    """{category name: AP@[.5:.95], area all, 100 detections} from an accumulated
    evaluator, averaged as COCOeval averages AP: over the entries that are not -1;
    -1 for a category without GT. A name shared by two categories gets " (id N)"."""
    categories = {cat["id"]: cat["name"] for cat in gt["categories"]}
    shared = {name for name in categories.values() if list(categories.values()).count(name) > 1}
    precision = evaluator.eval["precision"]  # [T, R, K, A, M]
    per_category = {}
    for k, category_id in enumerate(evaluator.params.catIds):
        name = categories[category_id]
        name = f"{name} (id {category_id})" if name in shared else name
        values = precision[:, :, k, 0, -1]
        values = values[values > -1]
        per_category[name] = float(values.mean()) if values.size else -1.0
    return per_category


def _check_image_ids(image_ids, gt):
    known = {img["id"] for img in gt["images"]}
    image_ids = sorted(set(image_ids))
    unknown = [i for i in image_ids if i not in known]
    if unknown:
        raise EvaluationError(f"{len(unknown)} image id(s) to evaluate are not in the GT (first: {unknown[0]!r})")
    return image_ids
