"""Images and objects in the model's input frame: the compact form training decodes into once.

A model family resizes its input to a square of side ``S`` (``longest_side``: the longest side
becomes ``S``, aspect kept, padding bottom/right; ``square``: both sides become ``S``). Training
never needs more pixels than that, so a decoded image is kept shrunk to fit the frame
(:meth:`Frame.fit`; images already smaller are kept as they are) as ``h x w x 3`` uint8, and its
objects as a few *label layers* instead of ``K`` full-size boolean masks:

- ``labels`` is ``L x h x w`` integer; object ``k`` (0-based) is the pixels of layer
  ``layers[k]`` whose value is ``k + 1``. Objects that do not overlap (every mask-folder object,
  most COCO objects) share layer 0; an object overlapping an earlier one of its layer goes to the
  next layer that has room, so ``L`` is the largest number of objects stacked on one pixel.
- Label maps are shrunk with nearest sampling at pixel centres (pixel ``i`` of the output reads
  source pixel ``floor((i + 0.5) * H / h)``), the image with Pillow's antialiased bilinear filter.

Coordinates of a :class:`FrameSample` are pixels of its stored ``h x w`` image; ``original_size``
is the ``H x W`` of the file (EXIF orientation applied), for mapping back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

RESIZE_MODES = ("longest_side", "square")


@dataclass(frozen=True)
class Frame:
    """The input frame of a model family: side ``size`` and resize ``mode``."""

    size: int
    resize: str = "longest_side"

    def __post_init__(self) -> None:
        if self.resize not in RESIZE_MODES or self.size < 1:
            raise ValueError(f"a frame needs a size >= 1 and a resize in {RESIZE_MODES}, got {self}")

    def fit(self, height: int, width: int) -> tuple[int, int]:
        """``(h, w)`` an ``height x width`` image is stored at: never larger than the frame needs.

        ``longest_side``: the frame's own resized size (rounded as the model's preprocessing
        rounds) when the image is larger, else unchanged; ``square``: each side capped at ``S``.
        """
        if self.resize == "square":
            return min(height, self.size), min(width, self.size)
        scale = self.size / max(height, width)
        if scale >= 1.0:
            return height, width
        return max(1, int(height * scale + 0.5)), max(1, int(width * scale + 0.5))


def centre_index(source: int, out: int) -> np.ndarray:
    """Source index of each of ``out`` output pixels whose centres map into ``[0, source)``."""
    centres = (np.arange(out) + 0.5) * (source / out)
    return np.clip(np.floor(centres).astype(np.int64), 0, source - 1)


def shrink_labels(labels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``L x H x W`` label layers at ``size = (h, w)`` by nearest sampling at pixel centres."""
    height, width = labels.shape[-2:]
    if (height, width) == tuple(size):
        return labels
    rows, cols = centre_index(height, size[0]), centre_index(width, size[1])
    return np.ascontiguousarray(labels[:, rows[:, None], cols[None, :]])


def label_dtype(count: int) -> np.dtype:
    """The smallest signed integer type that holds object numbers ``1..count``."""
    return np.dtype(np.int16) if count < np.iinfo(np.int16).max else np.dtype(np.int32)


def object_boxes(labels: np.ndarray, layers: np.ndarray) -> np.ndarray:
    """``K x 4`` int64 ``(row0, col0, row1, col1)`` boxes (ends exclusive) of object ``k``, which is
    ``labels[layers[k]] == k + 1``, from one pass over each layer; zeros for an object without pixels."""
    from scipy import ndimage

    boxes = np.zeros((len(layers), 4), np.int64)
    for layer in np.unique(layers):
        for k, found in enumerate(ndimage.find_objects(labels[layer], max_label=len(layers))):
            if found is not None and layers[k] == layer:
                boxes[k] = found[0].start, found[1].start, found[0].stop, found[1].stop
    return boxes


def pack_masks(masks: list[np.ndarray], height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """``K`` bool ``H x W`` masks -> ``(labels L x H x W, layers K)`` (see the module docstring)."""
    dtype = label_dtype(len(masks))
    stack: list[np.ndarray] = []
    layers = np.zeros(len(masks), dtype=np.int64)
    for k, mask in enumerate(masks):
        layer = next((i for i, taken in enumerate(stack) if not taken[mask].any()), len(stack))
        if layer == len(stack):
            stack.append(np.zeros((height, width), dtype=dtype))
        stack[layer][mask] = k + 1
        layers[k] = layer
    labels = np.stack(stack) if stack else np.zeros((1, height, width), dtype=dtype)
    return labels, layers


@dataclass
class FrameSample:
    """A decoded image and its objects in the model's input frame (see the module docstring).

    Attributes:
        image: ``h x w x 3`` uint8 RGB (shrunk to fit the frame).
        labels: ``L x h x w`` int16/int32 label layers; object ``k`` is ``labels[layers[k]] == k + 1``.
        layers: ``K`` int64, the layer of each object.
        areas: ``K`` int64, pixels of each object in ``labels`` (0 when shrinking lost it).
        boxes: ``K x 4`` int64 ``(row0, col0, row1, col1)`` (ends exclusive) around each object's
            pixels in ``labels``; zeros for an object without pixels.
        category_ids: ``K`` int64; ``iscrowd``: ``K`` bool; ``ann_ids``: ``K`` ids for reports.
        original_size: ``(H, W)`` of the file, EXIF orientation applied.
    """

    image: np.ndarray
    labels: np.ndarray
    layers: np.ndarray
    areas: np.ndarray
    boxes: np.ndarray
    category_ids: np.ndarray
    iscrowd: np.ndarray
    ann_ids: list[int | str]
    image_id: int | str
    file_name: str
    original_size: tuple[int, int]

    @property
    def size(self) -> tuple[int, int]:
        """``(h, w)`` of the stored image."""
        return int(self.image.shape[0]), int(self.image.shape[1])

    def masks(self) -> np.ndarray:
        """``K x h x w`` bool masks of every object (for code that needs them one by one)."""
        values = np.arange(1, len(self.layers) + 1)[:, None, None]
        return self.labels[self.layers] == values if len(self.layers) else np.zeros((0, *self.size), bool)

    def pixels_of(self, ks: Sequence[int]) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """``{k: (rows, cols)}``: the pixels of each object of ``ks`` in row-major order (as
        ``np.nonzero`` of its mask gives them), read inside the object's box only."""
        out = {}
        for k in {int(k) for k in ks}:
            r0, c0, r1, c1 = (int(v) for v in self.boxes[k])
            rows, cols = np.nonzero(self.labels[self.layers[k], r0:r1, c0:c1] == k + 1)
            out[k] = rows + r0, cols + c0
        return out
