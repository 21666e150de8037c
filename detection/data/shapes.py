"""The embedded synthetic dataset: squares, circles and triangles on noisy backgrounds.

Each image is S x S (SHAPES_IMAGE_SIZE) with 1 to 4 shapes of random colour and size
(sides 10% to 40% of S: 12 to 51 px at 128 px), placed fully inside the image; later shapes
are drawn over earlier ones, but a placement is rejected when it would leave an earlier shape
less than MIN_VISIBLE_FRACTION of its area. Class ids: 1 square, 2 circle, 3 triangle.

Images are rendered on demand from a small ``ShapesImageSpec`` (Record.path is None,
Record.synthetic holds the spec), so the dataset costs no disk and no memory. Everything is
reproducible from the seed: the training set uses config.SEED, the validation set SEED + 1.

Frames: masks are the VISIBLE pixels of each shape; a box is the bounding box of its mask in
pixel edges, ``[y1, x1, y2, x2] = [first row, first col, last row + 1, last col + 1]``, so
``mask_bbox(mask) == box`` exactly.
"""

import dataclasses
import functools

import cv2
import numpy as np

from detection.data.masks import mask_bbox  # noqa: F401 (also imported from here)
from detection.data.records import Dataset, Record
from detection.data.validation import ValidationReport, finalize_records

SHAPE_NAMES = ("square", "circle", "triangle")
MIN_SIDE_FRACTION, MAX_SIDE_FRACTION = 0.1, 0.4
MAX_SHAPES_PER_IMAGE = 4
MIN_VISIBLE_FRACTION = 0.6
NOISE_STD_RANGE = (2.0, 12.0)
# A shape's colour differs from the background by at least this much (sum over RGB) so every
# shape is visible against its background.
MIN_COLOUR_DISTANCE = 150
_PLACEMENT_ATTEMPTS = 20


@dataclasses.dataclass(frozen=True)
class ShapeSpec:
    """One shape: kind (a SHAPE_NAMES entry), colour (R, G, B), centre (cy, cx) and half-side
    ``half`` in pixels; the shape spans rows cy - half .. cy + half inclusive."""

    kind: str
    colour: tuple
    cy: int
    cx: int
    half: int

    def full_mask(self, size):
        """[size, size] uint8, 1 inside the whole shape (before occlusion)."""
        mask = np.zeros((size, size), np.uint8)
        y, x, h = self.cy, self.cx, self.half
        if self.kind == "square":
            cv2.rectangle(mask, (x - h, y - h), (x + h, y + h), 1, thickness=-1)
        elif self.kind == "circle":
            cv2.circle(mask, (x, y), h, 1, thickness=-1)
        elif self.kind == "triangle":
            points = np.array([[x, y - h], [x - h, y + h], [x + h, y + h]], np.int32)
            cv2.fillPoly(mask, [points], 1)
        else:
            raise ValueError(f"unknown shape kind {self.kind!r}; expected one of {SHAPE_NAMES}")
        return mask


@dataclasses.dataclass(frozen=True)
class ShapesImageSpec:
    """Everything needed to render one image: side ``size``, background colour (R, G, B),
    ``noise_seed`` and ``noise_std`` of the Gaussian pixel noise (``noise_seed`` picks a
    window of a fixed noise texture: drawing fresh normals costs more than the rest of the
    rendering), and the shapes in drawing order (later on top)."""

    size: int
    background: tuple
    noise_seed: int
    noise_std: float
    shapes: tuple

    def visible_masks(self):
        """[N, size, size] uint8: the pixels of each shape that no later shape covers."""
        full = [s.full_mask(self.size) for s in self.shapes]
        covered = np.zeros((self.size, self.size), np.uint8)
        visible = [None] * len(full)
        for i in range(len(full) - 1, -1, -1):
            visible[i] = full[i] & (1 - covered)
            covered |= full[i]
        return np.stack(visible) if visible else np.zeros((0, self.size, self.size), np.uint8)

    def render(self):
        """-> (image [S, S, 3] uint8 RGB, masks [N, S, S] uint8 visible pixels), original frame."""
        masks = self.visible_masks()
        image = np.empty((self.size, self.size, 3), np.float32)
        image[:] = self.background
        for shape, mask in zip(self.shapes, masks):
            image[mask.astype(bool)] = shape.colour
        bank = _noise_bank(self.size)
        oy, ox = self.noise_seed % self.size, (self.noise_seed // self.size) % self.size
        image += bank[oy: oy + self.size, ox: ox + self.size] * np.float32(self.noise_std)
        return np.clip(image, 0, 255).astype(np.uint8), masks


@functools.lru_cache(maxsize=4)
def _noise_bank(size):
    """[2 size, 2 size, 3] float32 standard normal texture, the same in every process."""
    return np.random.default_rng(12345).standard_normal((2 * size, 2 * size, 3), np.float32)


def random_image_spec(rng, size):
    """A random ShapesImageSpec of side ``size`` drawn from ``rng`` (np.random.Generator)."""
    background = tuple(int(c) for c in rng.integers(0, 256, 3))
    shapes, visible, areas = [], [], []
    for _ in range(int(rng.integers(1, MAX_SHAPES_PER_IMAGE + 1))):
        for _ in range(_PLACEMENT_ATTEMPTS):
            candidate = _random_shape(rng, size, background)
            mask = candidate.full_mask(size)
            # Drawing the candidate on top only removes pixels of the shapes already placed.
            remaining = [v & (1 - mask) for v in visible]
            if all(r.sum() >= MIN_VISIBLE_FRACTION * a for r, a in zip(remaining, areas)):
                shapes.append(candidate)
                visible = remaining + [mask]
                areas.append(int(mask.sum()))
                break
    return ShapesImageSpec(size, background, int(rng.integers(0, 2**31 - 1)),
                           float(rng.uniform(*NOISE_STD_RANGE)), tuple(shapes))


def _random_shape(rng, size, background):
    kind = SHAPE_NAMES[int(rng.integers(0, len(SHAPE_NAMES)))]
    side = rng.uniform(MIN_SIDE_FRACTION, MAX_SIDE_FRACTION) * size
    half = max(2, int(round(side / 2)))
    cy = int(rng.integers(half, size - half))
    cx = int(rng.integers(half, size - half))
    while True:
        colour = rng.integers(0, 256, 3)
        if np.abs(colour - np.asarray(background)).sum() >= MIN_COLOUR_DISTANCE:
            return ShapeSpec(kind, tuple(int(c) for c in colour), cy, cx, half)


def make_shapes_dataset(count, seed, size, name="shapes", max_gt_instances=100, strict=False):
    """A Dataset of ``count`` synthetic images of side ``size``, reproducible from ``seed``.

    Record.boxes: [N, 4] float32 [y1, x1, y2, x2] original-image pixels, the bounding box of
    each visible mask; class_ids: 1 square, 2 circle, 3 triangle; image_id: 0..count-1.
    """
    rng = np.random.default_rng(seed)
    report = ValidationReport(name, strict=strict)
    records = []
    for image_id in range(count):
        spec = random_image_spec(rng, size)
        masks = spec.visible_masks()
        boxes = np.stack([mask_bbox(m) for m in masks]) if len(masks) else np.zeros((0, 4), np.float32)
        n = len(spec.shapes)
        records.append(Record(
            image_id=image_id, path=None, height=size, width=size,
            boxes=boxes.astype(np.float32),
            class_ids=np.array([SHAPE_NAMES.index(s.kind) + 1 for s in spec.shapes], np.int32),
            iscrowd=np.zeros(n, bool), difficult=np.zeros(n, bool), synthetic=spec))
    records = finalize_records(records, report, True, max_gt_instances, file_of=lambda r: f"shapes[{r.image_id}]")
    return Dataset(name=name, records=records, class_names=list(SHAPE_NAMES),
                   category_ids=[1, 2, 3], report=report, source="synthetic")


def load_shapes(config, subset="train", strict=None):
    """The shapes dataset of ``config``: SHAPES_TRAIN_COUNT images with seed SEED for
    "train", SHAPES_VAL_COUNT with seed SEED + 1 for "val"; side SHAPES_IMAGE_SIZE."""
    if subset not in ("train", "val"):
        raise ValueError(f"subset must be 'train' or 'val', got {subset!r}")
    count = config.SHAPES_TRAIN_COUNT if subset == "train" else config.SHAPES_VAL_COUNT
    seed = config.SEED if subset == "train" else config.SEED + 1
    strict = config.STRICT_DATA if strict is None else strict
    return make_shapes_dataset(count, seed, config.SHAPES_IMAGE_SIZE, name=f"shapes/{subset}",
                               max_gt_instances=config.MAX_GT_INSTANCES, strict=strict)
