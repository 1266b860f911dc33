"""``samlora data check``: every problem of a split, and a summary of what it holds.

:func:`check_dataset` starts from the reader's cheap problems (see :mod:`samlora.data.coco` and
:mod:`samlora.data.masks` for their severities) and, with ``deep=True``, opens every image and
decodes every object in a thread pool, adding:

- errors: an unreadable or corrupt image or mask; a declared ``width``/``height`` differing from
  the image file (EXIF orientation applied); an object whose mask is empty or whose size differs
  from its image's; a multiclass mask value without a class name; a mask of unknown type; a
  lossless mask with more than two values when the masks were detected as binary from a sample;
- warnings: a file ``bbox`` reaching outside the image; a lossless mask with more than two values
  when ``data.mask_type`` is binary (it is split at its Otsu threshold); objects dropped by
  ``min_object_area`` (one warning with the count); a category without any object in the split
  (saying when it is a super-category or duplicate that is no text prompt); two category names that
  differ only in letter case.

An all-black mask is an image without objects (a negative), not a problem.

All sizes and areas are in pixels of the original image (EXIF orientation applied).
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from samlora.errors import DataError

from . import decode
from .categories import non_prompt_categories
from .decode import (
    ReadObjects,
    binary_threshold,
    check_mask_kind,
    coco_object_mask,
    coco_objects,
    read_objects,
    two_values,
)
from .frame import Frame, FrameSample
from .images import DEFAULT_MAX_PIXELS, exif_orientation, load_label_map, read_image
from .layout import find_splits, open_split
from .records import ImageRecord, Problem, SegDataset
from .summary import DataReport, summarise

log = logging.getLogger(__name__)

_BOX_SLACK_PX = 1.0


@dataclass
class _ImageResult:
    size: tuple[int, int] | None = None
    categories: list[int] = field(default_factory=list)
    crowd: list[bool] = field(default_factory=list)
    area_fractions: list[float] = field(default_factory=list)
    dropped: int = 0
    problems: list[Problem] = field(default_factory=list)
    sample: FrameSample | None = None


class _Checker:
    def __init__(
        self,
        ds: SegDataset,
        frame: Frame | None = None,
        keep: bool = False,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ):
        self.ds = ds
        self.frame = frame
        self.keep = keep and frame is not None
        self.max_pixels = max_pixels
        self.options = {
            "binary_objects": "components", "min_object_area": 0, **ds.decode_options, "max_pixels": max_pixels,
        }  # fmt: skip

    def _declared(self, record: ImageRecord, height: int, width: int, out: _ImageResult) -> None:
        if record.height is None or record.width is None or (record.height, record.width) == (height, width):
            return
        hint = ""
        orientation = exif_orientation(record.path)
        if orientation != 1 and (record.height, record.width) in ((width, height), (height, width)):
            hint = (
                f" The file has EXIF orientation {orientation}, which samlora applies; the annotations were "
                f"probably made on the unrotated pixels: re-save the image without the EXIF rotation"
            )
        out.problems.append(
            Problem(
                "error",
                str(self.ds.annotation_file or record.path),
                f"image id {record.image_id}",
                f"declared width x height {record.width}x{record.height} differs from the file '{record.file_name}' "
                f"({width}x{height}).{hint}",
                "correct 'width'/'height' in the json, or replace the image",
            )
        )

    def _coco(self, record: ImageRecord, height: int, width: int, out: _ImageResult) -> ReadObjects | None:
        source = str(self.ds.annotation_file or record.path)
        masks = []
        for obj in record.objects:
            where = f"annotation id {obj.ann_id}"
            try:
                mask = coco_object_mask(record, obj, height, width)
            except DataError as exc:
                out.problems.append(Problem("error", source, where, str(exc)))
                continue
            masks.append(mask)
            area = int(mask.sum())
            if area == 0:
                out.problems.append(
                    Problem(
                        "error",
                        source,
                        where,
                        f"empty mask: the segmentation covers no pixel of image "
                        f"'{record.file_name}' ({width}x{height}, image id {record.image_id})",
                        "check the coordinates (pixels of the original image), or delete the annotation",
                    )
                )
            if obj.bbox_xyxy is not None:
                x0, y0, x1, y1 = obj.bbox_xyxy
                if (
                    x0 < -_BOX_SLACK_PX
                    or y0 < -_BOX_SLACK_PX
                    or x1 > width + _BOX_SLACK_PX
                    or y1 > height + _BOX_SLACK_PX
                ):
                    out.problems.append(
                        Problem(
                            "warning",
                            source,
                            where,
                            f"bbox {[round(v, 1) for v in obj.bbox_xyxy]} (XYXY) reaches outside "
                            f"image '{record.file_name}' ({width}x{height}); the box is taken from the mask",
                            "fix 'bbox'",
                        )
                    )
            out.categories.append(obj.category_id)
            out.crowd.append(obj.iscrowd)
            if not obj.iscrowd:
                out.area_fractions.append(area / float(height * width))
        if len(masks) < len(record.objects) or not self.keep:
            return None
        return coco_objects(record, masks, height, width)

    def _many_values(self, record: ImageRecord, label: np.ndarray, out: _ImageResult) -> None:
        """A lossless binary mask with more than two values: soft edges, or labels of another type."""
        if two_values(label) is not None:
            return
        values = np.unique(label)
        shown = ", ".join(str(int(v)) for v in values[:8]) + (", ..." if len(values) > 8 else "")
        where = f"image id {record.image_id}"
        if self.ds.mask_kind_detected:
            out.problems.append(
                Problem(
                    "error",
                    str(record.mask_path),
                    where,
                    f"mask holds {len(values)} distinct values ({shown}) but the masks were detected as "
                    "binary from a sample of the data set, so objects of other values would be merged",
                    "set data.mask_type to instance (value = object) or multiclass (value = class id), "
                    "or to binary if these are binary masks with soft edges",
                )
            )
            return
        out.problems.append(
            Problem(
                "warning",
                str(record.mask_path),
                where,
                f"binary mask has {len(values)} distinct values ({shown}); pixels above "
                f"{binary_threshold(label):g} (the Otsu threshold) are foreground",
                "save binary masks with two values, or set data.mask_type to multiclass or instance",
            )
        )

    def _label_map(
        self, record: ImageRecord, height: int, width: int, out: _ImageResult
    ) -> ReadObjects | None:
        where = f"image id {record.image_id}"
        try:
            kind = check_mask_kind(record)
            label = load_label_map(record.mask_path, self.max_pixels)
            objects = read_objects(record, height, width, label=label, **self.options)
        except DataError as exc:
            out.problems.append(Problem("error", str(record.mask_path), where, str(exc)))
            return None
        lossless = record.mask_path.suffix.lower() not in (".jpg", ".jpeg")
        if kind == "binary" and lossless:
            self._many_values(record, label, out)
        categories, dropped = objects.category_ids, objects.dropped
        known = self.ds.category_names
        if kind == "multiclass":
            for value in sorted(set(categories) - set(known)):
                out.problems.append(
                    Problem(
                        "error",
                        str(record.mask_path),
                        where,
                        f"mask value {value} has no class name (known values: {sorted(known)})",
                        f"add {value} to data.class_names, or fix the mask",
                    )
                )
        out.dropped += dropped
        out.categories.extend(categories)
        out.crowd.extend([False] * len(categories))
        out.area_fractions.extend((objects.areas / float(height * width)).tolist())
        return objects

    def deep(self, record: ImageRecord) -> _ImageResult:
        out = _ImageResult()
        try:
            image, (height, width) = read_image(record.path, self.frame, self.max_pixels)
        except DataError as exc:
            out.problems.append(
                Problem(
                    "error",
                    str(record.path),
                    f"image id {record.image_id}",
                    str(exc),
                    "replace or remove the image",
                )
            )
            return out
        out.size = (height, width)
        self._declared(record, height, width, out)
        objects = None
        if record.mask_path is not None:
            if record.mask_kind is not None:  # unknown kind: the reader's error says so once
                objects = self._label_map(record, height, width, out)
        else:
            objects = self._coco(record, height, width, out)
        if (
            self.frame is not None
            and objects is not None
            and not any(p.severity == "error" for p in out.problems)
        ):
            out.sample = decode.load_sample(
                record, frame=self.frame, read=(image, (height, width), objects), **self.options
            )
        return out

    def quick(self, record: ImageRecord) -> _ImageResult:
        out = _ImageResult()
        if record.height is not None and record.width is not None:
            out.size = (record.height, record.width)
        out.categories = [o.category_id for o in record.objects]
        out.crowd = [o.iscrowd for o in record.objects]
        return out


def _case_duplicates(ds: SegDataset, source: str) -> list[Problem]:
    """One warning per category whose name equals an earlier one's except for letter case (unless
    one of them is already reported as a super-category/duplicate that is no text prompt)."""
    first: dict[str, tuple[int, str]] = {}
    skipped = non_prompt_categories(ds)
    out = []
    for category in ds.categories:
        key = category.name.strip().lower()
        if (
            key in first
            and first[key][1] != category.name
            and not {category.id, first[key][0]} & set(skipped)
        ):
            out.append(
                Problem(
                    "warning",
                    source,
                    f"category id {category.id}",
                    f"category '{category.name}' differs from category id {first[key][0]} "
                    f"('{first[key][1]}') only in letter case; text prompts are lower-cased, so they are one concept",
                    "rename or merge the two categories",
                )
            )
        first.setdefault(key, (category.id, category.name))
    return out


def check_dataset(
    ds: SegDataset,
    deep: bool = True,
    workers: int = 4,
    frame: Frame | None = None,
    keep: bool = False,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> DataReport:
    """Check a split: the reader's problems plus, with ``deep``, every image and object decoded.

    ``workers`` threads decode in parallel (Pillow and pycocotools release the GIL); an image over
    ``max_pixels`` (``data.max_pixels``; 0: no limit) is an error found from its header. With
    ``frame`` (and ``deep``), images are decoded shrunk to that input frame (JPEG draft mode);
    with ``keep`` too, the report holds every image's :class:`FrameSample` (``report.samples``):
    the check is then the one decode of the files that training needs.
    """
    checker = _Checker(ds, frame if deep else None, keep, max_pixels)
    run = checker.deep if deep else checker.quick
    if deep and workers > 1 and len(ds.images) > 1:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(run, ds.images))
    else:
        results = [run(record) for record in ds.images]
    problems = list(ds.problems) + [p for r in results for p in r.problems]
    summary = summarise(ds, results, deep)
    source = str(ds.annotation_file or ds.root)
    if summary["dropped_small_objects"]:
        problems.append(
            Problem(
                "warning",
                source,
                None,
                f"{summary['dropped_small_objects']} object(s) smaller than min_object_area="
                f"{checker.options['min_object_area']} pixels are dropped",
                "lower data.min_object_area to keep them",
            )
        )
    if summary["classes"] is not None:
        present = {c for r in results for c in r.categories}
        not_prompts = non_prompt_categories(ds)
        for category in ds.categories:
            if category.id not in present:
                why = not_prompts.get(category.id)
                problems.append(
                    Problem(
                        "warning",
                        source,
                        f"category id {category.id}",
                        f"category '{category.name}' has no object in the '{ds.split}' split"
                        + (f"; {why}, so concept models do not use it as a text prompt" if why else ""),
                        "remove it if it is a super-category (Roboflow exports add one), or add examples",
                    )
                )
    problems += _case_duplicates(ds, source)
    samples = [r.sample for r in results] if checker.keep else None
    report = DataReport(problems=problems, summary=summary, samples=samples)
    log.debug(
        "checked %s [%s]: %d image(s), %d error(s), %d warning(s)",
        ds.root,
        ds.split,
        len(ds.images),
        len(report.errors),
        len(report.warnings),
    )
    return report


def check_root(
    root: Path | str,
    format: str = "auto",
    splits: list[str] | None = None,
    deep: bool = True,
    workers: int = 4,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    **mask_options: Any,
) -> list[DataReport]:
    """Check every split found in ``root`` (or the named ``splits``): one report per split.

    A split that cannot be opened (malformed json, missing split) gives a report holding that
    error. Raises :class:`DataError` only when ``root`` holds no data set at all.
    """
    root = Path(root)
    names = list(splits) if splits else list(find_splits(root, format, **mask_options))
    order = {"train": 0, "valid": 1, "test": 2}
    names.sort(key=lambda n: (order.get(n, 3), n))
    reports = []
    for name in names:
        try:
            ds = open_split(root, name, format, **mask_options)
        except DataError as exc:
            problem = Problem("error", str(root), f"split {name}", str(exc))
            reports.append(
                DataReport([problem], {"split": name, "root": str(root), "format": format, "deep": deep})
            )
            continue
        reports.append(check_dataset(ds, deep=deep, workers=workers, max_pixels=max_pixels))
    return reports
