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
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from samlora.errors import DataError

from .categories import non_prompt_categories
from .decode import binary_threshold, check_mask_kind, check_mask_size, coco_object_mask, label_map_objects
from .images import DEFAULT_MAX_PIXELS, exif_orientation, load_image, load_label_map
from .layout import find_splits, open_split
from .records import ImageRecord, Problem, SegDataset

log = logging.getLogger(__name__)

_PERCENTILES = (0, 5, 25, 50, 75, 95, 100)
_BOX_SLACK_PX = 1.0


@dataclass
class DataReport:
    """The problems of one split (reader's and checks') and a summary of its contents.

    ``summary`` keys: split, root, format, deep, images, objects, crowd_objects,
    objects_per_image {min, mean, max}, images_without_objects, classes {name: count},
    mask_area_fraction {p0, p5, ..., p100} (non-crowd objects, fraction of image area),
    image_sizes {height: [min, median, max], width: [...], distinct, known}, dropped_small_objects.
    Counts of objects are ``None`` when they are unknown (mask folders with ``deep=False``).
    """

    problems: list[Problem] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """No errors (warnings allowed)."""
        return not any(p.severity == "error" for p in self.problems)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    def format(self) -> str:
        """A readable report: summary first, then every problem, errors first."""
        s = self.summary
        mode = "deep" if s.get("deep") else "quick (files not decoded)"
        lines = [
            f"Data check of {s.get('root', '?')} [split {s.get('split', '?')}] ({s.get('format', '?')}, {mode})"
        ]
        if "images" in s:
            lines.append(f"  images: {s['images']}")
            if s.get("objects") is None:
                lines.append("  objects: not counted (mask folders are counted only by a deep check)")
            else:
                per = s["objects_per_image"]
                lines.append(
                    f"  objects: {s['objects']} ({s['crowd_objects']} crowd); per image min {per['min']} / "
                    f"mean {per['mean']:.2f} / max {per['max']}"
                )
                lines.append(f"  images without objects: {s['images_without_objects']}")
                classes = ", ".join(f"{name}: {count}" for name, count in s["classes"].items()) or "none"
                lines.append(f"  classes: {classes}")
            area = s.get("mask_area_fraction")
            if area:
                lines.append(
                    "  mask area (fraction of image): " + ", ".join(f"{k} {v:.4f}" for k, v in area.items())
                )
            sizes = s.get("image_sizes")
            if sizes:
                h, w = sizes["height"], sizes["width"]
                lines.append(
                    f"  image sizes (HxW): min {h[0]}x{w[0]}, median {h[1]}x{w[1]}, max {h[2]}x{w[2]}; "
                    f"{sizes['distinct']} distinct size(s) among {sizes['known']} image(s)"
                )
            if s.get("dropped_small_objects"):
                lines.append(f"  objects dropped by min_object_area: {s['dropped_small_objects']}")
        errors, warnings = self.errors, self.warnings
        lines.append(f"Problems: {len(errors)} error(s), {len(warnings)} warning(s)")
        lines.extend(f"  {p}" for p in errors + warnings)
        lines.append("OK" if self.ok else "NOT OK: fix the errors above")
        return "\n".join(lines)


@dataclass
class _ImageResult:
    size: tuple[int, int] | None = None
    categories: list[int] = field(default_factory=list)
    crowd: list[bool] = field(default_factory=list)
    area_fractions: list[float] = field(default_factory=list)
    dropped: int = 0
    problems: list[Problem] = field(default_factory=list)


class _Checker:
    def __init__(self, ds: SegDataset, max_pixels: int = DEFAULT_MAX_PIXELS):
        self.ds, self.max_pixels = ds, max_pixels
        self.options = {"binary_objects": "components", "min_object_area": 0, **ds.decode_options}

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

    def _coco(self, record: ImageRecord, height: int, width: int, out: _ImageResult) -> None:
        source = str(self.ds.annotation_file or record.path)
        for obj in record.objects:
            where = f"annotation id {obj.ann_id}"
            try:
                mask = coco_object_mask(record, obj, height, width)
            except DataError as exc:
                out.problems.append(Problem("error", source, where, str(exc)))
                continue
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

    def _many_values(self, record: ImageRecord, label: np.ndarray, out: _ImageResult) -> None:
        """A lossless binary mask with more than two values: soft edges, or labels of another type."""
        values = np.unique(label)
        if len(values) <= 2:
            return
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

    def _label_map(self, record: ImageRecord, height: int, width: int, out: _ImageResult) -> None:
        where = f"image id {record.image_id}"
        try:
            kind = check_mask_kind(record)
            label = load_label_map(record.mask_path, self.max_pixels)
            check_mask_size(record, label, height, width)
        except DataError as exc:
            out.problems.append(Problem("error", str(record.mask_path), where, str(exc)))
            return
        lossless = record.mask_path.suffix.lower() not in (".jpg", ".jpeg")
        if kind == "binary" and lossless:
            self._many_values(record, label, out)
        masks, categories, _, dropped = label_map_objects(label, kind, **self.options)
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
        out.area_fractions.extend(
            (masks.reshape(len(masks), height * width).sum(axis=1) / float(height * width)).tolist()
        )

    def deep(self, record: ImageRecord) -> _ImageResult:
        out = _ImageResult()
        try:
            image = load_image(record.path, self.max_pixels)
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
        height, width = int(image.shape[0]), int(image.shape[1])
        del image
        out.size = (height, width)
        self._declared(record, height, width, out)
        if record.mask_path is not None:
            if record.mask_kind is not None:  # unknown kind: the reader's error says so once
                self._label_map(record, height, width, out)
        else:
            self._coco(record, height, width, out)
        return out

    def quick(self, record: ImageRecord) -> _ImageResult:
        out = _ImageResult()
        if record.height is not None and record.width is not None:
            out.size = (record.height, record.width)
        out.categories = [o.category_id for o in record.objects]
        out.crowd = [o.iscrowd for o in record.objects]
        return out


def _summary(ds: SegDataset, results: list[_ImageResult], deep: bool) -> dict[str, Any]:
    counted = deep or ds.format == "coco"
    per_image = [len(r.categories) for r in results]
    names = ds.category_names
    counts = Counter(c for r in results for c in r.categories)
    repeated = {n for n, k in Counter(names.values()).items() if k > 1}
    classes = {(f"{n} (id {cid})" if n in repeated else n): counts.get(cid, 0) for cid, n in names.items()}
    classes.update({f"class {cid} (unknown)": n for cid, n in counts.items() if cid not in names})
    areas = np.array([a for r in results for a in r.area_fractions], dtype=np.float64)
    sizes = [r.size for r in results if r.size is not None]
    summary: dict[str, Any] = {
        "split": ds.split,
        "root": str(ds.root),
        "format": ds.format,
        "deep": deep,
        "images": len(ds.images),
        "objects": sum(per_image) if counted else None,
        "crowd_objects": sum(sum(r.crowd) for r in results) if counted else None,
        "objects_per_image": {
            "min": min(per_image, default=0),
            "mean": float(np.mean(per_image)) if per_image else 0.0,
            "max": max(per_image, default=0),
        }
        if counted
        else None,
        "images_without_objects": sum(1 for n in per_image if n == 0) if counted else None,
        "classes": classes if counted else None,
        "mask_area_fraction": {f"p{q}": float(np.percentile(areas, q)) for q in _PERCENTILES}
        if areas.size
        else None,
        "image_sizes": None,
        "dropped_small_objects": sum(r.dropped for r in results),
    }
    if sizes:
        hs, ws = np.array([s[0] for s in sizes]), np.array([s[1] for s in sizes])
        summary["image_sizes"] = {
            "height": [int(hs.min()), int(np.median(hs)), int(hs.max())],
            "width": [int(ws.min()), int(np.median(ws)), int(ws.max())],
            "distinct": len(set(sizes)),
            "known": len(sizes),
        }
    return summary


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
    ds: SegDataset, deep: bool = True, workers: int = 4, max_pixels: int = DEFAULT_MAX_PIXELS
) -> DataReport:
    """Check a split: the reader's problems plus, with ``deep``, every image and object decoded.

    ``workers`` threads decode in parallel (Pillow and pycocotools release the GIL); an image over
    ``max_pixels`` (``data.max_pixels``; 0: no limit) is an error found from its header."""
    checker = _Checker(ds, max_pixels)
    run = checker.deep if deep else checker.quick
    if deep and workers > 1 and len(ds.images) > 1:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(run, ds.images))
    else:
        results = [run(record) for record in ds.images]
    problems = list(ds.problems) + [p for r in results for p in r.problems]
    summary = _summary(ds, results, deep)
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
    report = DataReport(problems=problems, summary=summary)
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
