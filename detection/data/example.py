"""What one record becomes in the model input: the per-image numpy work of the pipeline.

Steps, in this order so the expensive work happens at the model's resolution:
  1. read the image (for training, when the resize method allows it, a JPEG is decoded at 1/2,
     1/4 or 1/8 size when it is scaled down anyway; inference decodes full pixels), take it from the
     record's image_loader (Python datasets, in-memory images) or render a synthetic one;
     decode the masks straight at the resized size;
  2. scale image, boxes and masks to ``geometry.resized_shape`` (IMAGE_RESIZE_MODE);
  3. augment (training only) image, boxes and masks together; if augmentation changed the
     image size, fit the result to the model input again (a second scale);
  4. pad to the model input (the image at the geometry's offset: top-left, or centred with
     matterport's resize); pad or truncate GT to MAX_GT_INSTANCES; crop each mask to its box
     and resize it to MINI_MASK_SHAPE.

Frames: ``gt_boxes`` are [y1, x1, y2, x2] MODEL-INPUT pixels; image_meta's window and scale map
them back (original = (input - window origin) / scale). With a crop augmentation the crop offset is not in
image_meta: image_meta then describes the augmented image (window and total scale), which is
what training needs (the window bounds the proposals).
"""

import dataclasses
import sys

import numpy as np

from detection.data import masks as mask_ops
from detection.data.images import (
    ImageReadError,
    decode_reduction,
    image_meta,
    pad_to,
    read_image_checked,
    resize_and_pad,
)
from detection.data.resize import geometry_from_config

# Without masks the pipeline ships [M, 1, 1] zeros instead of [M, mh, mw] (USE_MASK false).
NO_MASK_SHAPE = (1, 1)


def gt_mask_shape(config):
    """(mh, mw) of the gt_masks the pipeline yields: MINI_MASK_SHAPE, or (1, 1) without masks."""
    return tuple(config.MINI_MASK_SHAPE) if config.USE_MASK else NO_MASK_SHAPE


def load_example(record, config, report, augmenter=None, seed=0, with_gt=True):
    """The model inputs of one record, as numpy arrays, or None when its image is unreadable
    (then counted in ``report`` as unreadable_image, or DataError when strict).

    record: a Record; config: the Config; report: ValidationReport to count problems into;
    augmenter: an Augmenter (training) or None; seed: the augmentation seed of this read.
    Returns a dict:
      image: [H, W, 3] RGB, resized and zero-padded (H, W: geometry.padded_shape), uint8 (float32 for
        a resize method that keeps interpolated values: ResizeMethod.pixel_dtype).
      image_meta: [12] float32 (detection/core/image_meta.py).
      with_gt only:
      gt_class_ids: [M] int32, 0 padding, crowd boxes negative; M = MAX_GT_INSTANCES.
      gt_boxes: [M, 4] float32 [y1, x1, y2, x2] model-input pixels, padding rows zero.
      gt_masks: [M, mh, mw] uint8 mini masks (zeros without masks), see gt_mask_shape.
    """
    want_masks = with_gt and config.USE_MASK and (record.synthetic is not None or record.segmentations is not None)
    geometry = geometry_from_config(record.height, record.width, config)
    image, masks = _read_resized(record, geometry, want_masks, report, reduced_decode=with_gt)
    if image is None:
        return None
    boxes = record.boxes * np.float32(geometry.scale)
    class_ids = np.where(record.iscrowd, -record.class_ids, record.class_ids).astype(np.int32)
    scale = geometry.scale

    if augmenter is not None and with_gt:
        image, boxes, keep, masks = augmenter(image, boxes, masks, seed)
        if len(keep) < len(class_ids):
            report.add("dropped_by_augmentation", _name(record), "boxes",
                       f"{len(class_ids) - len(keep)} of {len(class_ids)}", count=len(class_ids) - len(keep))
        class_ids = class_ids[keep]
        if image.shape[:2] != geometry.resized_shape:
            # Augmentation changed the size (RandomScale, crops): fit it to the input again.
            refit = geometry_from_config(image.shape[0], image.shape[1], config)
            image = resize_and_pad(image, refit.unpadded())
            boxes = boxes * np.float32(refit.scale)
            if masks is not None:
                masks = mask_ops.resize_masks(masks, refit.resized_shape)
            scale *= refit.scale
            geometry = dataclasses.replace(refit, scale=scale)

    example = {
        "image": pad_to(image, geometry.padded_shape, geometry.offset).astype(geometry.resize_method.pixel_dtype,
                                                                               copy=False),
        "image_meta": image_meta(record.image_id, (record.height, record.width), geometry),
    }
    if with_gt:
        example.update(_padded_gt(record, config, report, class_ids, boxes, masks, geometry.offset))
    return example


def _read_resized(record, geometry, want_masks, report, reduced_decode=True):
    """(image [rh, rw, 3] uint8, masks [N, rh, rw] uint8 or None) at geometry.resized_shape,
    or (None, None) for an unreadable image (counted). reduced_decode: a large JPEG may be
    decoded at 1/2..1/8 (training's speed-up; inference decodes full pixels, as the exported
    model receives them)."""
    resized = geometry.resized_shape
    if record.synthetic is not None:
        image, masks = record.synthetic.render()
        image = resize_and_pad(image, geometry.unpadded())
        masks = mask_ops.resize_masks(masks, resized) if want_masks else None
        return image, masks
    # A loader gives the full-size image; a file is decoded at a reduced size when it can be
    # (when the resize method allows it: ResizeMethod.reduced_decode).
    reduction = 1
    if reduced_decode and record.image_loader is None and geometry.resize_method.reduced_decode:
        reduction = decode_reduction((record.height, record.width), resized)
    try:
        if record.image_loader is not None:
            image = record.image_loader()
        else:
            image, truncated = read_image_checked(record.path, reduction)
            # Decoded as far as the data go, as at load time and at inference; loading
            # usually counted (and showed) it already.
            if truncated and report.add("truncated_image", _name(record), "", "no end-of-image marker", once=True):
                _warn(f"truncated image {_name(record)}: decoded as far as its data go, the rest grey")
    except ImageReadError as e:
        detail = str(e).split(": ", 1)[-1]
        if report.add("unreadable_image", _name(record), "", detail, once=True):
            _warn(f"skipped unreadable image {_name(record)}: {detail}")  # once a file, while training runs
        return None, None
    expected = (-(-record.height // reduction), -(-record.width // reduction))
    if abs(image.shape[0] - expected[0]) > 1 or abs(image.shape[1] - expected[1]) > 1:
        report.add("size_mismatch", _name(record), "size", once=True, detail=
                   f"decoded {image.shape[0]}x{image.shape[1]} at 1/{reduction}, annotation says "
                   f"{record.height}x{record.width}")
    image = resize_and_pad(image, geometry.unpadded())
    masks = None
    if want_masks:
        masks = np.zeros((record.num_boxes,) + tuple(resized), np.uint8)
        for i, segmentation in enumerate(record.segmentations):
            if segmentation:
                masks[i] = mask_ops.decode_segmentation(segmentation, record.height, record.width,
                                                        geometry.scale, resized)
    return image, masks


def _padded_gt(record, config, report, class_ids, boxes, masks, offset):
    """GT arrays padded (or truncated, counted) to MAX_GT_INSTANCES rows; boxes and masks come
    in the resized image's frame, boxes leave in the padded input's (shifted by ``offset``)."""
    limit = config.MAX_GT_INSTANCES
    n = len(class_ids)
    if n > limit:
        report.add("truncated_to_max_gt", _name(record), "boxes", f"{n} boxes > {limit}", count=n - limit)
        n = limit
    mask_shape = gt_mask_shape(config)
    gt_class_ids = np.zeros(limit, np.int32)
    gt_boxes = np.zeros((limit, 4), np.float32)
    gt_masks = np.zeros((limit,) + mask_shape, np.uint8)
    gt_class_ids[:n] = class_ids[:n]
    gt_boxes[:n] = boxes[:n] + np.asarray(offset * 2, np.float32)
    if masks is not None and config.USE_MASK and n:
        gt_masks[:n] = mask_ops.mini_masks(masks[:n], boxes[:n], mask_shape)
    return {"gt_class_ids": gt_class_ids, "gt_boxes": gt_boxes, "gt_masks": gt_masks}


def _warn(message):
    print(f"warning: {message}", file=sys.stderr, flush=True)


def _name(record):
    if record.image_loader is not None:
        return str(record.image_loader)
    return record.path if record.path is not None else f"synthetic image {record.image_id}"
