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

from dataclasses import dataclass
from typing import Any, overload

import numpy as np
from pycocotools import mask as mask_utils
from scipy import ndimage

from samlora.errors import DataError

from .frame import Frame, FrameSample, label_dtype, object_boxes, pack_masks, shrink_labels
from .images import DEFAULT_MAX_PIXELS, load_image, load_label_map, read_image
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
    two = two_values(label)
    if two is not None:  # the common case, without a histogram: 0/255, 0/1, or one value
        low, high = two
        if high <= 0:
            return None
        return 0.0 if low == high else float(low)
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


def two_values(label: np.ndarray) -> tuple[float, float] | None:
    """``(min, max)`` when an ``H x W`` map holds at most two distinct values, else ``None``."""
    if not label.size:
        return None
    low, high = label.min(), label.max()
    if low == high or not ((label != low) & (label != high)).any():
        return low.item(), high.item()
    return None


def binary_foreground(label: np.ndarray) -> np.ndarray:
    """``H x W`` bool: pixels above :func:`binary_threshold` (empty when the map is all 0)."""
    threshold = binary_threshold(label)
    if threshold is None:
        return np.zeros(label.shape, dtype=bool)
    return label > threshold


def _value_ids(label: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(values, ids)``: the non-zero values of a label map and an ``H x W`` int32 map of their
    rank (1-based; 0 where the value is 0), with one pass over the pixels."""
    small = label.dtype.kind == "i" and label.size and label.min() >= 0 and label.max() < 1 << 20
    if label.dtype.kind == "u" and label.dtype.itemsize <= 2 or small:
        present = np.bincount(label.ravel()) > 0
        present[0] = False
        values = np.flatnonzero(present)
        lookup = np.zeros(present.size, dtype=np.int32)
        lookup[values] = np.arange(1, values.size + 1, dtype=np.int32)
        return values, lookup[label]
    values, inverse = np.unique(label, return_inverse=True)
    nonzero = values != 0
    lookup = (np.cumsum(nonzero) * nonzero).astype(np.int32)
    return values[nonzero], lookup[inverse.reshape(label.shape)]


def label_map_instances(
    label: np.ndarray, kind: str, binary_objects: str = "components", min_object_area: int = 0
) -> tuple[np.ndarray, list[int], list[int], int, np.ndarray]:
    """Objects of an ``H x W`` label map read as ``kind``, as one instance map (no per-object masks).

    Returns ``(instances, category_ids, ann_ids, dropped, areas)``: ``instances`` is ``H x W`` int32
    with object ``k`` (0-based) where it is ``k + 1`` (0: background), then ``K`` category ids,
    ``K`` ann ids (object numbers from 1, or pixel values for instance masks), the number of
    objects dropped for having fewer than ``min_object_area`` pixels, and ``K`` pixel areas.
    Objects of a label map never overlap, so one map holds them all.
    """
    if kind == "instance":
        values, instances = _value_ids(label)
        categories = [1] * len(values)
        ann_ids = [int(v) for v in values]
    else:
        if kind == "binary":
            classes = [(1, binary_foreground(label))]
        else:
            values, ids = _value_ids(label)
            classes = [(int(v), ids == i + 1) for i, v in enumerate(values)]
        instances = np.zeros(label.shape, dtype=np.int32)
        categories = []
        for category, foreground in classes:
            if binary_objects == "whole":
                count = int(foreground.any())
                parts = foreground.astype(np.int32)
            else:
                parts, count = ndimage.label(foreground, structure=_EIGHT_CONNECTED, output=np.int32)
            if count:
                instances = (
                    parts if len(classes) == 1 else np.where(foreground, parts + len(categories), instances)
                )
                categories.extend([category] * count)
        ann_ids = list(range(1, len(categories) + 1))
    # counting only the object pixels: most of a mask is background, and bincount converts
    # every counted value to a 64-bit index first
    areas = np.bincount(instances[instances > 0], minlength=len(categories) + 1)[1:].astype(np.int64)
    keep = areas >= max(int(min_object_area), 1)  # every object has a pixel: 0 drops nothing
    dropped = int((~keep).sum())
    if not keep.all():
        lookup = np.zeros(len(categories) + 1, dtype=np.int32)
        lookup[1:][keep] = np.arange(1, int(keep.sum()) + 1, dtype=np.int32)
        instances = lookup[instances]
        categories = [c for c, k in zip(categories, keep) if k]
        ann_ids = [a for a, k in zip(ann_ids, keep) if k]
        areas = areas[keep]
    return instances, categories, ann_ids, dropped, areas


def label_map_objects(
    label: np.ndarray, kind: str, binary_objects: str = "components", min_object_area: int = 0
) -> tuple[np.ndarray, list[int], list[int], int]:
    """Objects of an ``H x W`` label map read as ``kind`` (binary, multiclass or instance).

    Returns ``K x H x W`` bool masks, ``K`` category ids, ``K`` ann ids (object numbers, or pixel
    values for instance masks) and the number of objects dropped for having fewer than
    ``min_object_area`` pixels (see :func:`label_map_instances`, which avoids the masks).
    """
    instances, categories, ann_ids, dropped, _ = label_map_instances(
        label, kind, binary_objects, min_object_area
    )
    masks = _instance_masks(instances, len(categories))
    return masks, categories, ann_ids, dropped


def _instance_masks(instances: np.ndarray, count: int) -> np.ndarray:
    """``K x H x W`` bool masks of an instance map (object ``k`` where it is ``k + 1``)."""
    if not count:
        return np.zeros((0, *instances.shape), dtype=bool)
    masks = np.zeros((count, *instances.shape), dtype=bool)
    rows, cols = np.nonzero(instances)
    masks[instances[rows, cols] - 1, rows, cols] = True
    return masks


def _stack(masks: list[np.ndarray], height: int, width: int) -> np.ndarray:
    if not masks:
        return np.zeros((0, height, width), dtype=bool)
    return np.ascontiguousarray(np.stack(masks).astype(bool, copy=False))


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


@dataclass
class ReadObjects:
    """A record's objects as read at the image's full ``H x W`` (see :mod:`samlora.data.frame`).

    ``labels`` ``L x H x W`` label layers with ``layers`` (``K``); ``areas`` ``K`` pixel counts;
    ``dropped``: mask-folder objects dropped by ``min_object_area``.
    """

    labels: np.ndarray
    layers: np.ndarray
    areas: np.ndarray
    category_ids: list[int]
    iscrowd: list[bool]
    ann_ids: list[int | str]
    dropped: int = 0


def read_objects(
    record: ImageRecord,
    height: int,
    width: int,
    *,
    binary_objects: str = "components",
    min_object_area: int = 0,
    label: np.ndarray | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> ReadObjects:
    """Read the objects of ``record`` (an ``height x width`` image); ``label``: its label map if read.

    Raises :class:`DataError` naming the file or annotation that cannot be read.
    """
    if record.mask_path is not None:
        kind = check_mask_kind(record)
        label = load_label_map(record.mask_path, max_pixels) if label is None else label
        check_mask_size(record, label, height, width)
        instances, categories, ann_ids, dropped, areas = label_map_instances(
            label, kind, binary_objects, int(min_object_area)
        )
        labels = instances[None].astype(label_dtype(len(categories)), copy=False)
        return ReadObjects(
            labels, np.zeros(len(categories), np.int64), areas, categories, [False] * len(categories),
            ann_ids, dropped,
        )  # fmt: skip
    masks = [coco_object_mask(record, obj, height, width) for obj in record.objects]
    return coco_objects(record, masks, height, width)


def coco_objects(record: ImageRecord, masks: list[np.ndarray], height: int, width: int) -> ReadObjects:
    """The :class:`ReadObjects` of a COCO record from its objects' decoded ``H x W`` masks."""
    labels, layers = pack_masks(masks, height, width)
    return ReadObjects(
        labels, layers, np.array([int(m.sum()) for m in masks], np.int64),
        [obj.category_id for obj in record.objects], [obj.iscrowd for obj in record.objects],
        [obj.ann_id for obj in record.objects],
    )  # fmt: skip


def in_frame(
    record: ImageRecord, image: np.ndarray, original_size: tuple[int, int], objects: ReadObjects
) -> FrameSample:
    """The :class:`FrameSample` of a record from its shrunk ``image`` and its full-size objects."""
    labels = shrink_labels(objects.labels, image.shape[:2])
    areas = np.zeros(len(objects.layers), np.int64)
    for layer in range(labels.shape[0]):
        counts = np.bincount(labels[layer].ravel(), minlength=len(objects.layers) + 1)
        mine = np.flatnonzero(objects.layers == layer)
        areas[mine] = counts[mine + 1]
    return FrameSample(
        image=image,
        labels=labels,
        layers=objects.layers,
        areas=areas,
        boxes=object_boxes(labels, objects.layers),
        category_ids=np.asarray(objects.category_ids, dtype=np.int64).reshape(-1),
        iscrowd=np.asarray(objects.iscrowd, dtype=bool).reshape(-1),
        ann_ids=list(objects.ann_ids),
        image_id=record.image_id,
        file_name=record.file_name,
        original_size=(int(original_size[0]), int(original_size[1])),
    )


@overload
def load_sample(
    record: ImageRecord,
    *,
    binary_objects: str = ...,
    min_object_area: int = ...,
    frame: None = None,
    max_pixels: int = ...,
) -> Sample: ...
@overload
def load_sample(
    record: ImageRecord,
    *,
    binary_objects: str = ...,
    min_object_area: int = ...,
    frame: Frame,
    read: tuple[np.ndarray, tuple[int, int], ReadObjects] | None = None,
    max_pixels: int = ...,
) -> FrameSample: ...
def load_sample(
    record: ImageRecord,
    *,
    binary_objects: str = "components",
    min_object_area: int = 0,
    frame: Frame | None = None,
    read: tuple[np.ndarray, tuple[int, int], ReadObjects] | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> Sample | FrameSample:
    """Decode a record: the image (``H x W x 3`` uint8 RGB) and its objects (``K x H x W`` bool).

    With ``frame``, the compact :class:`~samlora.data.frame.FrameSample` in that input frame
    instead (image shrunk to fit it, JPEGs decoded in draft mode, objects as label layers);
    ``read`` gives what a caller already read (the shrunk image, the full size and the objects,
    as the data check does) so that nothing is read twice.

    Raises:
        DataError: naming the file and record, when the image or a mask cannot be read, a mask's
            size differs from the image's, or the image is larger than ``max_pixels`` (0: no limit).
    """
    if binary_objects not in BINARY_OBJECTS:
        raise DataError(f"binary_objects must be one of {BINARY_OBJECTS}, not {binary_objects!r}")
    options = {
        "binary_objects": binary_objects,
        "min_object_area": int(min_object_area),
        "max_pixels": max_pixels,
    }
    if frame is not None:
        if read is None:
            image, size = read_image(record.path, frame, max_pixels)
            read = (image, size, read_objects(record, *size, **options))
        return in_frame(record, *read)
    image = load_image(record.path, max_pixels)
    height, width = int(image.shape[0]), int(image.shape[1])
    if record.mask_path is not None:
        objects = read_objects(record, height, width, **options)
        masks = _instance_masks(objects.labels[0], len(objects.layers))
    else:
        objects = None
        masks = _stack(
            [coco_object_mask(record, obj, height, width) for obj in record.objects], height, width
        )
    return Sample(
        image=image,
        masks=masks,
        category_ids=np.asarray(
            objects.category_ids if objects else [o.category_id for o in record.objects], dtype=np.int64
        ).reshape(-1),
        iscrowd=np.asarray(objects.iscrowd if objects else [o.iscrowd for o in record.objects], bool).reshape(
            -1
        ),
        ann_ids=list(objects.ann_ids if objects else [o.ann_id for o in record.objects]),
        image_id=record.image_id,
        file_name=record.file_name,
    )
