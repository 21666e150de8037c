"""CustomDataset subclasses for tests/data/test_python_dataset.py, written as a user would
write them (no relative imports: tools load this file by path, --format python:FILE:CLASS)."""
import numpy as np

from detection.data.custom_dataset import CustomDataset

SIZE = 64


class Squares(CustomDataset):
    """64 x 64 images drawn in load_image (no files), light (class 1) and dark (class 2)
    squares on grey; the masks are the squares."""

    SQUARES = [  # per image: (class id, y, x, side)
        [(1, 8, 8, 20)],
        [(2, 30, 10, 16), (1, 4, 36, 24)],
        [(1, 40, 40, 12)],
        [(2, 10, 30, 20)],
    ]

    def load_subset(self, subset, config):
        self.add_class("squares", 1, "light")
        self.add_class("squares", 2, "dark")
        for i, squares in enumerate(self.SQUARES):
            self.add_image("squares", image_id=f"{subset}_{i}", path=None, squares=squares)

    def load_image(self, image_id):
        image = np.full((SIZE, SIZE, 3), 100, np.uint8)
        for class_id, y, x, side in self.image_info[image_id]["squares"]:
            image[y:y + side, x:x + side] = 230 if class_id == 1 else 20
        return image

    def load_mask(self, image_id):
        squares = self.image_info[image_id]["squares"]
        masks = np.zeros((SIZE, SIZE, len(squares)), bool)
        for j, (_, y, x, side) in enumerate(squares):
            masks[y:y + side, x:x + side, j] = True
        return masks, np.array([c for c, *_ in squares], np.int32)


class Flawed(Squares):
    """Image 0 has an empty mask and class ids 7 and 0 beside a good square."""

    def load_mask(self, image_id):
        masks, class_ids = super().load_mask(image_id)
        if image_id == 0:
            masks = np.concatenate([masks, np.zeros((SIZE, SIZE, 3), bool)], axis=2)
            masks[:4, :4, 2:] = True
            class_ids = np.array([1, 2, 7, 0], np.int32)
        return masks, class_ids


class BoxesOnly(CustomDataset):
    """Files on disk (the default load_image), boxes without masks, sizes given to add_image."""

    def load_subset(self, subset, config):
        self.add_class("cells", 10, "red")
        self.add_class("cells", 20, "white")
        folder = config.TRAIN_IMAGES if subset == "train" else config.VAL_IMAGES
        self.add_image("cells", "a", f"{folder}/a.png", height=40, width=60)
        self.add_image("cells", "b", f"{folder}/missing.png", height=40, width=60)

    def load_boxes(self, image_id):
        return np.array([[1, 2, 10, 20], [30, 50, 45, 70]], np.float32), np.array([1, 2])


class Broken(Squares):
    """load_mask fails as ported code does when a key is misspelt."""

    def load_mask(self, image_id):
        info = self.image_info[image_id]
        return info["polygons"], None


class BadImage(Squares):
    """load_image returns floats."""

    def load_image(self, image_id):
        return super().load_image(image_id) / 255.0


class WrongMaskShape(Squares):
    def load_mask(self, image_id):
        masks, class_ids = super().load_mask(image_id)
        return masks[..., 0], class_ids


class NotADataset:
    pass


class NoInstances(Squares):
    """matterport's base load_mask answer for an image without instances; sizes in image_info."""

    WIDTH = SIZE

    def load_subset(self, subset, config):
        super().load_subset(subset, config)
        for info in self.image_info:
            info.update(height=SIZE, width=self.WIDTH)

    def load_mask(self, image_id):
        return np.empty([0, 0, 0]), np.empty([0], np.int32)


class MisSized(NoInstances):
    """image_info says 48 columns, load_image makes 64."""

    WIDTH = 48


class SquaresWithSourceIds(Squares):
    """Squares whose classes have the source's own ids (as a ported COCO dataset's): 18, 44."""

    def load_subset(self, subset, config):
        self.add_class("coco", 18, "light")
        self.add_class("coco", 44, "dark")
        for i, squares in enumerate(self.SQUARES):
            self.add_image("coco", image_id=1000 + i, path=None, squares=squares)
