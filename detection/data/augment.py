"""Training augmentation with albumentations, built from config.AUGMENTATION.

config.AUGMENTATION is a list of ``{name: ..., p: ..., other arguments}``, applied in order;
each name is an albumentations transform from ``AUGMENTATIONS`` (transforms that move pixels
also move boxes and masks, so the three stay consistent). Example::

    AUGMENTATION:
      - {name: HorizontalFlip, p: 0.5}
      - {name: Affine, p: 0.5, scale: [0.8, 1.2]}          # scale jitter
      - {name: RandomSizedBBoxSafeCrop, p: 0.3, height: 128, width: 128}
      - {name: RandomBrightnessContrast, p: 0.5}

Boxes go through ``BboxParams(format="pascal_voc", min_visibility=MIN_BOX_VISIBILITY,
clip=True)``: a box pushed partly out of the image is clipped, one keeping less than
MIN_BOX_VISIBILITY of its area is dropped (with its mask), and the caller counts the drops.

Reproducibility: each call takes a seed; the same seed gives the same result, whatever
thread runs it (every thread has its own Compose, re-seeded per call).
"""

import inspect
import os
import threading

# albumentations asks PyPI for a newer version when imported: a network call at every start,
# and a warning offline. This library never fetches anything it was not asked to.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
import albumentations as A  # noqa: E402
import numpy as np  # noqa: E402

from detection.config import ConfigError  # noqa: E402

# The transforms known to keep image, boxes and masks consistent (spatial) or to touch only
# pixels (colour). Scale jitter: Affine(scale=...) or RandomScale (changes the image size;
# the pipeline fits the result to the model input again).
AUGMENTATIONS = {
    name: getattr(A, name)
    for name in (
        "HorizontalFlip", "VerticalFlip", "Affine", "RandomScale", "RandomResizedCrop",
        "RandomSizedBBoxSafeCrop", "BBoxSafeRandomCrop", "RandomCrop", "CenterCrop",
        "ColorJitter", "RandomBrightnessContrast", "HueSaturationValue", "RandomGamma",
        "ToGray", "GaussNoise", "GaussianBlur", "MotionBlur", "CLAHE",
    )
}


def build_transforms(specs):
    """config.AUGMENTATION entries -> list of albumentations transforms.

    Raises ConfigError naming the entry for an unknown name (listing the valid names) or for
    arguments the transform rejects.
    """
    transforms = []
    for i, spec in enumerate(specs):
        spec = dict(spec)
        name = spec.pop("name", None)
        if name not in AUGMENTATIONS:
            raise ConfigError(f"AUGMENTATION[{i}]: unknown augmentation {name!r}; "
                              f"valid names: {', '.join(sorted(AUGMENTATIONS))}")
        accepted = set(inspect.signature(AUGMENTATIONS[name].__init__).parameters) - {"self", "kwargs", "args"}
        unknown = sorted(set(spec) - accepted)
        if unknown:  # albumentations only warns about these; a typo should not pass silently
            raise ConfigError(f"AUGMENTATION[{i}] ({name}): unknown argument(s) {', '.join(unknown)}; "
                              f"valid: {', '.join(sorted(accepted))}")
        try:
            transforms.append(AUGMENTATIONS[name](**spec))
        except (TypeError, ValueError) as e:
            message = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise ConfigError(f"AUGMENTATION[{i}] ({name}): invalid arguments {spec}: {message}") from None
    return transforms


class Augmenter:
    """Applies the configured augmentation to one image with its boxes and masks.

    specs: config.AUGMENTATION; min_visibility: config.MIN_BOX_VISIBILITY.
    """

    def __init__(self, specs, min_visibility):
        self.specs = [dict(s) for s in specs]
        self.min_visibility = min_visibility
        build_transforms(self.specs)  # fail early, in the caller's thread, on a bad config
        self._local = threading.local()

    def _compose(self):
        compose = getattr(self._local, "compose", None)
        if compose is None:
            compose = A.Compose(
                build_transforms(self.specs),
                # Boxes are filtered once, after the last transform, not after each one: the
                # per-transform checks cost more than flipping a small image.
                bbox_params=A.BboxParams(format="pascal_voc", label_fields=["instance_index"],
                                         min_visibility=self.min_visibility, clip=True,
                                         filter_invalid_bboxes=True, check_each_transform=False),
            )
            self._local.compose = compose
        return compose

    def __call__(self, image, boxes, masks=None, seed=0):
        """Augments one image.

        image: [h, w, 3] uint8 RGB; boxes: [N, 4] float32 [y1, x1, y2, x2] pixels of ``image``;
        masks: None or [N, h, w] uint8 in the frame of ``image``; seed: int.
        Returns (image [h', w', 3] uint8, boxes [K, 4] float32 in the augmented frame,
        keep [K] int64 indices of the surviving input boxes, masks [K, h', w'] uint8 or None).
        """
        compose = self._compose()
        compose.set_random_seed(int(seed))
        h, w = image.shape[:2]
        xyxy = np.clip(boxes[:, [1, 0, 3, 2]], 0, [w, h, w, h])
        data = {"image": image, "bboxes": xyxy.reshape(-1, 4), "instance_index": np.arange(len(boxes))}
        if masks is not None and len(masks):
            data["masks"] = masks
        out = compose(**data)
        keep = np.asarray(out["instance_index"], np.int64).reshape(-1)
        out_boxes = np.asarray(out["bboxes"], np.float32).reshape(-1, 4)[:, [1, 0, 3, 2]]
        out_masks = None
        if masks is not None:
            new_h, new_w = out["image"].shape[:2]
            if len(masks):
                out_masks = np.asarray(out["masks"])[keep]
            else:
                out_masks = np.zeros((0, new_h, new_w), np.uint8)
        return out["image"], out_boxes, keep, out_masks
