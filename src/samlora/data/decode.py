"""Decoding one listed image and its objects into a :class:`Sample` (runs in DataLoader workers).

Masks are ``K x H x W`` bool at the image's own resolution (``H x W`` of the image as displayed,
EXIF orientation applied). COCO objects are rasterised with pycocotools exactly like
``pycocotools.coco.COCO.annToMask`` (polygons of one object are merged), at the size of the image
file. Mask-folder objects come from the record's label map:

- ``binary``: foreground = pixels above the mask's Otsu threshold (for a two-valued mask, the lower
  value), so 0/1, 0/255 and JPEG noise around either all work; category id 1.
- ``multiclass``: each non-zero pixel value present is a class, category id = the value.
- ``instance``: one object per non-zero pixel value present, category id 1, ann id = the value.

Binary and multiclass masks become objects by ``binary_objects``: ``"components"`` gives one object
per 8-connected component (of each class), ``"whole"`` one object for the whole foreground (of each
class); ann ids number the objects from 1.

``min_object_area`` (pixels) drops smaller mask-folder objects (:func:`label_map_objects` also
returns how many, for data checks). COCO objects are never dropped here.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pycocotools import mask as mask_utils
from scipy import ndimage

from samlora.errors import DataError

from .images import DEFAULT_MAX_PIXELS, load_image, load_label_map
from .records import ImageRecord, ObjectAnn, Sample

BINARY_OBJECTS = ("components", "whole")
_EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


def coco_mask(segmentation: Any, height: int, width: int) -> np.ndarray:
    """``H x W`` bool mask of a COCO segmentation (polygons, compressed or uncompressed RLE).

    Same result as ``COCO.annToMask`` with the image's ``height``/``width``; RLE keeps its own size.
    """
    if isinstance(segmentation, list):
        rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
    elif isinstance(segmentation.get("counts"), list):
        rle = mask_utils.frPyObjects(segmentation, height, width)
    else:
        rle = segmentation
    return mask_utils.decode(rle).astype(bool)


def binary_threshold(label: np.ndarray) -> float | None:
    """Otsu threshold of an ``H x W`` label map's values: foreground is ``label > threshold``.

    The split of the sorted pixel values that maximises the between-class variance, so a two-valued
    mask splits between its values and JPEG noise around 0/1 or 0/255 falls on the right side.
    ``None`` for an all-zero map; ``0`` for a single non-zero value (all foreground).
    """
    if label.dtype.kind == "u" or (label.size and label.dtype.kind == "i" and label.min() >= 0):
        histogram = np.bincount(label.ravel())  # O(pixels), no sort
        values = np.flatnonzero(histogram)
        counts = histogram[values]
    else:
        values, counts = np.unique(label, return_counts=True)
    if values.size == 0 or values[-1] <= 0:
        return None
    if values.size == 1:
        return 0.0
    weights = counts.astype(np.float64)
    sums = np.cumsum(weights * values.astype(np.float64))
    below = np.cumsum(weights)[:-1]
    above = weights.sum() - below
    mean_below = sums[:-1] / below
    mean_above = (sums[-1] - sums[:-1]) / above
    between = below * above * (mean_below - mean_above) ** 2
    return float(values[int(np.argmax(between))])


def binary_foreground(label: np.ndarray) -> np.ndarray:
    """``H x W`` bool: pixels above :func:`binary_threshold` (empty when the map is all 0)."""
    threshold = binary_threshold(label)
    if threshold is None:
        return np.zeros(label.shape, dtype=bool)
    return label > threshold


def _objects(foreground: np.ndarray, binary_objects: str) -> list[np.ndarray]:
    """The objects of one ``H x W`` bool foreground: its 8-connected components, or all of it."""
    if not foreground.any():
        return []
    if binary_objects == "whole":
        return [foreground]
    labelled, count = ndimage.label(foreground, structure=_EIGHT_CONNECTED)
    return [labelled == i for i in range(1, count + 1)]


def _stack(masks: list[np.ndarray], height: int, width: int) -> np.ndarray:
    if not masks:
        return np.zeros((0, height, width), dtype=bool)
    return np.ascontiguousarray(np.stack(masks).astype(bool, copy=False))


def label_map_objects(
    label: np.ndarray, kind: str, binary_objects: str = "components", min_object_area: int = 0
) -> tuple[np.ndarray, list[int], list[int], int]:
    """Objects of an ``H x W`` label map read as ``kind`` (binary, multiclass or instance).

    Returns ``K x H x W`` bool masks, ``K`` category ids, ``K`` ann ids (object numbers, or pixel
    values for instance masks) and the number of objects dropped for having fewer than ``min_object_area`` pixels.
    """
    height, width = label.shape
    if kind == "instance":
        ids = [int(v) for v in np.unique(label) if v != 0]
        parts = [label == v for v in ids]
        categories = [1] * len(ids)
    else:
        classes = (
            [(1, binary_foreground(label))]
            if kind == "binary"
            else [(int(v), label == v) for v in np.unique(label) if v != 0]
        )
        parts, categories = [], []
        for category, foreground in classes:
            found = _objects(foreground, binary_objects)
            parts.extend(found)
            categories.extend([category] * len(found))
        ids = list(range(1, len(parts) + 1))
    keep = [i for i, part in enumerate(parts) if int(part.sum()) >= min_object_area]
    return (
        _stack([parts[i] for i in keep], height, width),
        [categories[i] for i in keep],
        [ids[i] for i in keep],
        len(parts) - len(keep),
    )


def check_mask_kind(record: ImageRecord) -> str:
    """The record's mask kind; DataError when the reader could not tell it."""
    if record.mask_kind not in ("binary", "multiclass", "instance"):
        raise DataError(
            f"the mask type of {record.mask_path} is not known; set data.mask_type to binary, multiclass or instance"
        )
    return record.mask_kind


def check_mask_size(record: ImageRecord, label: np.ndarray, height: int, width: int) -> None:
    """DataError naming both files when the label map's size is not the image's ``height x width``."""
    if label.shape != (height, width):
        raise DataError(
            f"mask {record.mask_path} is {label.shape[0]}x{label.shape[1]} (height x width) but image "
            f"{record.path} [image id {record.image_id}] is {height}x{width}; a mask must have its image's size. "
            f"Fix: re-export the mask at the image's size (check the EXIF rotation of the image)"
        )


def coco_object_mask(record: ImageRecord, obj: ObjectAnn, height: int, width: int) -> np.ndarray:
    """``H x W`` bool mask of one COCO object of ``record``; DataError naming the annotation on failure."""
    try:
        mask = coco_mask(obj.segmentation, height, width)
    except Exception as exc:  # pycocotools raises plain exceptions for malformed counts
        raise DataError(
            f"cannot decode the segmentation of annotation id {obj.ann_id} (image id {record.image_id}, "
            f"{record.file_name}): {exc}. Fix: re-export the mask"
        ) from exc
    if mask.shape != (height, width):
        raise DataError(
            f"the mask of annotation id {obj.ann_id} is {mask.shape[0]}x{mask.shape[1]} (height x width) but "
            f"image {record.path} [image id {record.image_id}] is {height}x{width}; the RLE 'size' must be the "
            f"image's size. Fix: re-export the mask"
        )
    return mask


def load_sample(
    record: ImageRecord,
    *,
    binary_objects: str = "components",
    min_object_area: int = 0,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> Sample:
    """Decode a record: the image (``H x W x 3`` uint8 RGB) and its objects (``K x H x W`` bool).

    Raises:
        DataError: naming the file and record, when the image or a mask cannot be read or a mask's
            size differs from the image's, or the image is larger than ``max_pixels`` (0: no limit).
    """
    if binary_objects not in BINARY_OBJECTS:
        raise DataError(f"binary_objects must be one of {BINARY_OBJECTS}, not {binary_objects!r}")
    image = load_image(record.path, max_pixels)
    height, width = int(image.shape[0]), int(image.shape[1])
    if record.mask_path is not None:
        kind = check_mask_kind(record)
        label = load_label_map(record.mask_path, max_pixels)
        check_mask_size(record, label, height, width)
        masks, category_ids, ann_ids, _ = label_map_objects(label, kind, binary_objects, int(min_object_area))
        iscrowd = np.zeros(len(ann_ids), dtype=bool)
    else:
        masks = _stack(
            [coco_object_mask(record, obj, height, width) for obj in record.objects], height, width
        )
        category_ids = [obj.category_id for obj in record.objects]
        ann_ids = [obj.ann_id for obj in record.objects]
        iscrowd = np.array([obj.iscrowd for obj in record.objects], dtype=bool)
    return Sample(
        image=image,
        masks=masks,
        category_ids=np.asarray(category_ids, dtype=np.int64).reshape(-1),
        iscrowd=iscrowd,
        ann_ids=list(ann_ids),
        image_id=record.image_id,
        file_name=record.file_name,
    )
