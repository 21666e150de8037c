"""CustomDataset: a dataset written in Python, for any annotation format the loaders do not read.

Modelled on matterport's ``mrcnn.utils.Dataset`` so that a Mask_RCNN dataset class ports by
changing its base class and adding one method, ``load_subset``, which every tool calls::

    from detection.data.custom_dataset import CustomDataset
    from detection.data.datasets import subset_paths

    class BalloonDataset(CustomDataset):             # was: utils.Dataset
        def load_subset(self, subset, config):       # new: what the tools call
            images, annotations, split = subset_paths(config, subset)  # --images, --annotations, --split
            self.load_balloon(images, subset)
        def load_balloon(self, dataset_dir, subset): ...  # unchanged: add_class, add_image
        def load_mask(self, image_id): ...                # unchanged

    python tools/train.py --config C --format python:balloon.py:BalloonDataset --images balloon

The tools make the instance (``BalloonDataset()``), call ``load_subset(subset, config)``
("train" or "val"; ``config`` is the run's Config), then ``prepare()``, then turn it into
records (detection/data/python_format.py), calling ``load_mask`` once per image at load
time (boxes must be known before training: stat_gt and evaluation need them) and
``load_image`` when the pipeline reads the image.

What matterport users know, with the same meaning:
  add_class(source, class_id, class_name); add_image(source, image_id, path, **kwargs);
  image_info: list of dicts {"id", "source", "path", **kwargs}, one per add_image;
  class_info: list of dicts {"source", "id", "name"}; class_info[0] is background "BG";
  prepare(); image_ids; num_images; num_classes and class_names (background included);
  map_source_class_id("source.id") -> internal class id; image_reference(image_id).
  ``image_id`` in load_image / load_mask / load_boxes / image_reference is matterport's
  internal id: the position 0..N-1 in image_info (add_image's id is image_info[i]["id"]).
  Class ids returned by load_mask are internal too: class_info positions 1..K, i.e. the
  order of add_class calls (the first added class is 1).

The methods a subclass overrides:
  load_image(image_id) -> [H, W, 3] uint8 RGB, the original image. Default: read_image on
      image_info[image_id]["path"] (EXIF orientation applied; JPEGs decoded at a reduced
      size when the model input is smaller), so most ports do not override it. Grayscale
      ([H, W] or [H, W, 1]) and RGBA results are made RGB. It runs in the input pipeline's
      reader threads: it must be safe to call from several threads at once.
  load_mask(image_id) -> (masks [H, W, N] bool (any dtype, nonzero = inside) of the image
      in its original size, class_ids [N] int). Boxes are the masks' pixel-edge bounding
      boxes; an empty mask is counted and its instance dropped.
  load_boxes(image_id) -> (boxes [N, 4] float [y1, x1, y2, x2] original-image pixels
      (continuous: a box over the whole image is [0, 0, H, W]), class_ids [N] int): for a
      dataset without masks, instead of load_mask (then set USE_MASK: false). The image
      size comes from add_image's height= and width= when given, else from the image.
"""

from detection.data.images import read_image

BACKGROUND = {"source": "", "id": 0, "name": "BG"}


class CustomDataset:
    """The base class of a Python dataset: see the module docstring for the interface."""

    def __init__(self, class_map=None):
        # class_map: accepted for matterport compatibility and unused (as there).
        self.image_info = []
        self.class_info = [dict(BACKGROUND)]
        self.prepare()

    # -- filling it ---------------------------------------------------------------------

    def load_subset(self, subset, config):
        """Fills the dataset with the images of ``subset`` ("train" or "val") by add_class and
        add_image; ``config`` is the run's Config (subset_paths(config, subset) gives its
        --images / --annotations / --split). Every subclass defines it."""
        raise NotImplementedError(f"{type(self).__name__} does not define load_subset(self, subset, config)")

    def add_class(self, source, class_id, class_name):
        """Adds class ``class_name`` with the source's own id ``class_id``; a (source, id) pair
        added before is ignored, as matterport does."""
        if "." in source:
            raise ValueError(f"source name {source!r} cannot contain a dot")
        if any(c["source"] == source and c["id"] == class_id for c in self.class_info):
            return
        self.class_info.append({"source": source, "id": class_id, "name": class_name})

    def add_image(self, source, image_id, path, **kwargs):
        """Adds an image: ``image_id`` is the source's own id (any value), ``path`` its file (or
        None when load_image makes the image); kwargs are kept in image_info (e.g. polygons,
        height, width)."""
        info = {"id": image_id, "source": source, "path": path}
        info.update(kwargs)
        self.image_info.append(info)

    def prepare(self, class_map=None):
        """Indexes classes and images (matterport's prepare; the tools call it after
        load_subset, so calling it yourself is harmless)."""
        self.num_classes = len(self.class_info)
        self.class_ids = list(range(self.num_classes))
        self.class_names = [str(c["name"]) for c in self.class_info]  # matterport cut names at a comma; not here
        self.num_images = len(self.image_info)
        self._image_ids = list(range(self.num_images))
        self.class_from_source_map = {f"{c['source']}.{c['id']}": i for i, c in enumerate(self.class_info)}
        self.image_from_source_map = {f"{info['source']}.{info['id']}": i for i, info in enumerate(self.image_info)}
        self.sources = sorted({c["source"] for c in self.class_info})
        self.source_class_ids = {source: [i for i, c in enumerate(self.class_info) if i == 0 or c["source"] == source]
                                 for source in self.sources}

    @property
    def image_ids(self):
        return self._image_ids

    def map_source_class_id(self, source_class_id):
        """"source.id" (e.g. "coco.12") -> internal class id."""
        return self.class_from_source_map[source_class_id]

    def image_reference(self, image_id):
        """A short text naming the image in messages: its path, else its source id."""
        info = self.image_info[image_id]
        return str(info.get("path") or info.get("id"))

    # -- reading it ---------------------------------------------------------------------

    def load_image(self, image_id):
        """[H, W, 3] uint8 RGB of image ``image_id`` (0..N-1): reads image_info's path."""
        return read_image(self.image_info[image_id]["path"])

    def load_mask(self, image_id):
        """(masks [H, W, N] bool, class_ids [N] int32) of image ``image_id``; override it
        (or load_boxes)."""
        raise NotImplementedError(f"{type(self).__name__} defines neither load_mask nor load_boxes")

    def load_boxes(self, image_id):
        """(boxes [N, 4] float [y1, x1, y2, x2] original pixels, class_ids [N] int32) of
        image ``image_id``, for datasets without masks; override it (or load_mask)."""
        raise NotImplementedError(f"{type(self).__name__} defines neither load_mask nor load_boxes")
