"""The in-memory form every reader produces: categories, images, objects, problems.

Readers (``coco.py``, ``masks.py``) turn files into a :class:`SegDataset`; nothing
is decoded until :func:`samlora.data.decode.load_sample` is called (in DataLoader
workers), so listing a data set of 100k images is cheap.

Coordinates are pixels of the original image, boxes are ``XYXY``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Category:
    """One class of objects. ``id`` is the id used in the files (any integer)."""

    id: int
    name: str
    supercategory: str = ""
    """COCO ``supercategory`` ("" when the file gives none); Roboflow names its super-category here."""


@dataclass
class ObjectAnn:
    """One annotated object of an image, not yet decoded.

    Exactly one of ``segmentation`` (COCO polygons or RLE) and ``label_value``
    (the pixel value of this object in the image's label map) is set.
    """

    ann_id: int | str
    category_id: int
    segmentation: Any = None
    label_value: int | None = None
    iscrowd: bool = False
    bbox_xyxy: tuple[float, float, float, float] | None = None


@dataclass
class ImageRecord:
    """One image of a split with its objects.

    ``path`` is absolute and inside the data root; ``mask_path`` is set for mask
    folder data sets, with ``mask_kind`` telling how its pixel values are read.
    """

    image_id: int | str
    file_name: str
    path: Path
    height: int | None = None
    width: int | None = None
    objects: list[ObjectAnn] = field(default_factory=list)
    mask_path: Path | None = None
    mask_kind: Literal["binary", "multiclass", "instance"] | None = None


@dataclass
class Problem:
    """One thing wrong with a data set, located precisely, with the fix."""

    severity: Severity
    file: str
    record: str | None
    message: str
    fix: str = ""

    def __str__(self) -> str:
        where = self.file + (f" [{self.record}]" if self.record else "")
        message = self.message.rstrip().rstrip(".")
        fix = f" Fix: {self.fix}" if self.fix and "Fix:" not in message else ""
        return f"{self.severity.upper()}: {where}: {message}.{fix}"


@dataclass
class SegDataset:
    """A split of a data set as listed by a reader (nothing decoded yet)."""

    root: Path
    split: str
    format: Literal["coco", "masks"]
    images: list[ImageRecord]
    categories: list[Category]
    problems: list[Problem] = field(default_factory=list)
    annotation_file: Path | None = None
    """The COCO json this split was read from (``None`` for mask folders); named in reports."""
    decode_options: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments for :func:`samlora.data.decode.load_sample` chosen when the split was
    opened (mask folders: ``binary_objects``, ``min_object_area``), so checks decode like training."""
    mask_kind_detected: bool = False
    """Mask folders: the mask type was detected from a sample of masks (``data.mask_type: auto``), so
    the deep check treats a mask that contradicts it as an error rather than a warning."""

    @property
    def category_names(self) -> dict[int, str]:
        """Category id -> name."""
        return {c.id: c.name for c in self.categories}

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    def __len__(self) -> int:
        return len(self.images)


@dataclass
class Sample:
    """A decoded image with its objects, at the image's own resolution.

    Attributes:
        image: ``H x W x 3`` uint8 RGB.
        masks: ``K x H x W`` bool, one per object (crowd objects included).
        category_ids: ``K`` int64, the file's category ids.
        iscrowd: ``K`` bool; crowd objects are ignore regions, not targets.
        ann_ids: ``K`` annotation ids, for reports.
        image_id: the record's id.
        file_name: the record's file name relative to the data root.
    """

    image: np.ndarray
    masks: np.ndarray
    category_ids: np.ndarray
    iscrowd: np.ndarray
    ann_ids: list[int | str]
    image_id: int | str
    file_name: str

    @property
    def size(self) -> tuple[int, int]:
        """``(height, width)``."""
        return int(self.image.shape[0]), int(self.image.shape[1])
