"""COCO instance-segmentation files -> :class:`SegDataset` (listing only; nothing is decoded).

Accepted: polygons (one or several per object, or a flat list of numbers for one polygon), RLE
with compressed (``counts`` string) or uncompressed (``counts`` list) counts, ``iscrowd`` objects
(kept, flagged), any image ids (integers in any order or strings), any integer category ids,
images without annotations (kept: they are negatives), ``file_name`` with sub-folders.
``bbox`` is optional; the file's box is kept as ``bbox_xyxy`` (``XYXY``, pixels) only when it is
well formed and agrees with the polygon/RLE extent; otherwise the box is derived from the mask.

Only cheap checks happen here (one ``stat`` per image, no image decoding); the deep checks are in
:mod:`samlora.data.check`. Severity policy:

- **error**: the data cannot be used as written, or using it would train on wrong targets
  (an object that exists but has no usable mask would teach the model that its pixels are
  background). Malformed json (also: not UTF-8, nested too deep), missing ``images`` list (a :class:`DataError`, nothing to list);
  missing or escaping image file, duplicate or missing image ids, an annotation whose image id or
  category id is unknown, missing segmentation, an object whose polygons are all degenerate
  (< 3 points or zero area), malformed RLE, RLE size different from the image's declared size,
  duplicate annotation ids, duplicate or non-integer category ids, missing ``categories`` list,
  ``iscrowd`` other than 0/1 (``"yes"`` is not a crowd flag), an ``area`` that is not a
  non-negative number.
- **warning**: samlora can go on with a stated fallback and nothing is learned wrongly: a missing
  or wrong ``bbox`` (box taken from the mask), one degenerate polygon among valid ones of the same
  object (that part dropped), a missing annotation id (a position-based id is used), malformed
  ``width``/``height`` (sizes read from the file), a category without a name, two categories with
  the same name, no ``annotations`` list (every image is a negative).

A record left out of ``images`` always has a Problem saying so.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

from pycocotools import mask as mask_utils

from samlora.errors import DataError
from samlora.io.readers import read_json

from .images import ESCAPE_MESSAGE, safe_path
from .records import Category, ImageRecord, ObjectAnn, Problem, SegDataset

log = logging.getLogger(__name__)

_BOX_TOLERANCE_PX = 2.0
_BOX_TOLERANCE_FRACTION = 0.05


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _as_int(value: Any) -> int | None:
    """An integer from an int or an integral float; ``None`` otherwise."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value if _is_int(value) else None


def _is_number(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)) and math.isfinite(value)


MAX_JSON_BYTES = 4 << 30
"""Largest annotation file read (COCO train2017's instances file is under 0.5 GiB)."""


def load_json(json_path: Path) -> Any:
    """Parse a json file; DataError naming the file and the problem (missing, not UTF-8, syntax error
    with its position, nested too deep, too large)."""
    return read_json(json_path, "annotation file", DataError, max_bytes=MAX_JSON_BYTES)


def _image_path(image_root: Path, data_root: Path, file_name: str) -> Path | None:
    """``image_root / file_name``, or ``None`` when it leaves the data root."""
    name = file_name.replace("\\", "/")
    try:
        inside = image_root.resolve().relative_to(data_root.resolve())
    except ValueError:  # an image root outside the data root: it is the boundary itself
        return safe_path(image_root, name)
    return safe_path(data_root, (inside / name).as_posix())


_LEFT_OUT = "; the annotation is left out"
_IMAGE_LEFT_OUT = "; the image and its annotations are left out"


class _Reader:
    """Turns the parsed json into records, collecting every problem on the way."""

    def __init__(self, json_path: Path, image_root: Path, data_root: Path):
        self.json_path = json_path
        self.image_root = image_root
        self.data_root = data_root
        self.problems: list[Problem] = []

    def error(self, record: str | None, message: str, fix: str = "") -> None:
        self.problems.append(Problem("error", str(self.json_path), record, message, fix))

    def warn(self, record: str | None, message: str, fix: str = "") -> None:
        self.problems.append(Problem("warning", str(self.json_path), record, message, fix))

    def categories(self, raw: Any) -> list[Category]:
        if not isinstance(raw, list):
            return []
        seen: dict[int, int] = {}
        names: dict[str, int] = {}
        out: list[Category] = []
        for index, item in enumerate(raw):
            where = f"categories[{index}]"
            cat_id = _as_int(item.get("id")) if isinstance(item, dict) else None
            if cat_id is None:
                self.error(
                    where, "category has no integer 'id'; it is left out", "give it {'id': int, 'name': str}"
                )
                continue
            where = f"category id {cat_id}"
            if cat_id in seen:
                msg = (
                    f"category id {cat_id} appears twice (categories[{seen[cat_id]}] and categories[{index}])"
                )
                self.error(where, msg + "; the second is left out", "give every category its own id")
                continue
            seen[cat_id] = index
            name = item.get("name")
            if not isinstance(name, str) or not name.strip():
                name = f"class {cat_id}"
                self.warn(
                    where, f"category has no name; it is called '{name}'", "add a 'name' (prompts use it)"
                )
            if name in names:
                msg = f"category name '{name}' is also used by category id {names[name]}"
                self.warn(where, msg, "give categories distinct names (text prompts cannot tell them apart)")
            names.setdefault(name, cat_id)
            parent = item.get("supercategory")
            out.append(Category(cat_id, name, parent if isinstance(parent, str) else ""))
        return out

    def _image(
        self, index: int, item: Any, by_id: dict[Any, ImageRecord], left_out: set[Any]
    ) -> ImageRecord | None:
        image_id = item.get("id") if isinstance(item, dict) else None
        if isinstance(image_id, float) and image_id.is_integer():
            image_id = int(image_id)
        if not (_is_int(image_id) or isinstance(image_id, str)):
            self.error(
                f"images[{index}]", "image has no integer or string 'id'; it is left out", "add an 'id'"
            )
            return None
        where = f"image id {image_id}"
        if image_id in by_id:
            msg = f"image id {image_id} appears twice ('{by_id[image_id].file_name}' and images[{index}])"
            self.error(where, msg + "; the second is left out", "give every image its own id")
            return None
        file_name = item.get("file_name")
        path = _image_path(self.image_root, self.data_root, file_name) if isinstance(file_name, str) else None
        if not isinstance(file_name, str) or not file_name.strip():
            self.error(
                where, "image has no 'file_name'" + _IMAGE_LEFT_OUT, "add the path relative to the images"
            )
        elif path is None:
            msg = f"{ESCAPE_MESSAGE}: '{file_name}'" + _IMAGE_LEFT_OUT
            self.error(where, msg, f"use a path relative to {self.image_root} without '..'")
        elif not path.is_file():
            msg = f"image file '{file_name}' not found under {self.image_root}" + _IMAGE_LEFT_OUT
            self.error(where, msg, "add the file or remove the image from the json")
        else:
            height, width = _as_int(item.get("height")), _as_int(item.get("width"))
            if ("height" in item or "width" in item) and not (height and width and height > 0 and width > 0):
                msg = f"width/height {item.get('width')!r}x{item.get('height')!r} are not positive integers"
                self.warn(where, msg + "; the size is read from the file", "fix or remove them")
                height = width = None
            return ImageRecord(image_id, file_name, path, height=height, width=width)
        left_out.add(image_id)
        return None

    def images(self, raw: list[Any]) -> tuple[list[ImageRecord], dict[Any, ImageRecord], set[Any]]:
        by_id: dict[Any, ImageRecord] = {}
        left_out: set[Any] = set()
        for index, item in enumerate(raw):
            record = self._image(index, item, by_id, left_out)
            if record is not None:
                by_id[record.image_id] = record
        return list(by_id.values()), by_id, left_out

    def _polygons(self, segm: list[Any], where: str) -> list[list[float]] | None:
        polygons = [segm] if all(_is_number(v) for v in segm) else segm
        if not all(isinstance(p, list) and all(_is_number(v) for v in p) for p in polygons):
            msg = "segmentation holds a polygon that is not a list of numbers" + _LEFT_OUT
            self.error(where, msg, "write polygons as [[x1, y1, x2, y2, ...], ...]")
            return None
        good = [
            [float(v) for v in p] for p in polygons if len(p) >= 6 and not len(p) % 2 and _polygon_area(p) > 0
        ]
        if not good:
            msg = f"degenerate polygon: all {len(polygons)} polygon(s) have fewer than 3 points or zero area"
            self.error(
                where, msg + _LEFT_OUT, "redraw the object, or delete the annotation if it is not there"
            )
            return None
        if len(good) < len(polygons):
            msg = f"{len(polygons) - len(good)} of {len(polygons)} polygons are degenerate (< 3 points or zero area)"
            self.warn(where, msg + " and are dropped", "redraw those parts")
        return good

    def _rle(self, segm: dict[str, Any], where: str, image: ImageRecord) -> dict[str, Any] | None:
        size, counts = segm.get("size"), segm.get("counts")
        if not (isinstance(size, list) and len(size) == 2 and all((_as_int(v) or 0) > 0 for v in size)):
            self.error(where, f"RLE 'size' {size!r} is not [height, width]" + _LEFT_OUT, "re-export the mask")
            return None
        h, w = int(size[0]), int(size[1])
        if isinstance(counts, list):
            if not all(_is_int(v) and v >= 0 for v in counts) or sum(counts) != h * w:
                msg = f"uncompressed RLE counts do not add up to height x width = {h * w}" + _LEFT_OUT
                self.error(where, msg, "re-export the mask")
                return None
        elif not isinstance(counts, str) or not counts:
            self.error(where, "RLE 'counts' is neither a string nor a list" + _LEFT_OUT, "re-export the mask")
            return None
        if image.height is not None and (h, w) != (image.height, image.width):
            msg = (
                f"RLE size {h}x{w} (height x width) differs from the size of image id {image.image_id} "
                f"declared in the json ({image.height}x{image.width})"
            )
            self.error(where, msg + _LEFT_OUT, "re-export the mask at the image's size")
            return None
        return {"size": [h, w], "counts": counts}

    def _box(self, item: dict[str, Any], segm: Any, where: str) -> tuple[float, float, float, float] | None:
        raw = item.get("bbox")
        if raw is None:
            return None
        if (
            not (isinstance(raw, list) and len(raw) == 4 and all(_is_number(v) for v in raw))
            or min(raw[2:]) < 0
        ):
            msg = f"bbox {raw!r} is not [x, y, width, height]; the box is taken from the mask"
            self.warn(where, msg, "fix or remove 'bbox'")
            return None
        x, y, bw, bh = (float(v) for v in raw)
        box = (x, y, x + bw, y + bh)
        extent = _extent(segm)
        tolerance = max(_BOX_TOLERANCE_PX, _BOX_TOLERANCE_FRACTION * max(bw, bh, 1.0))
        if extent is not None and max(abs(a - b) for a, b in zip(box, extent)) > tolerance:
            msg = (
                f"bbox {[round(v, 1) for v in raw]} (x, y, w, h) does not match the mask's extent "
                f"{[round(v, 1) for v in extent]} (XYXY); the box is taken from the mask"
            )
            self.warn(where, msg, "fix or remove 'bbox'")
            return None
        return box

    def _annotation_id(self, index: int, item: dict[str, Any], seen: dict[Any, int]) -> tuple[Any, str]:
        ann_id = item.get("id")
        if not (_is_int(ann_id) or isinstance(ann_id, str)):
            ann_id = f"#{index}"
            msg = f"annotation has no id; it is called '{ann_id}' in reports"
            self.warn(f"annotations[{index}]", msg, "give every annotation an integer 'id'")
            return ann_id, f"annotations[{index}]"
        where = f"annotation id {ann_id}"
        if ann_id in seen:
            msg = (
                f"annotation id {ann_id} appears twice (annotations[{seen[ann_id]}] and annotations[{index}])"
            )
            self.error(where, msg, "give every annotation its own id (COCO evaluation keys objects by id)")
        seen.setdefault(ann_id, index)
        return ann_id, where

    def annotations(
        self,
        raw: list[Any],
        by_id: dict[Any, ImageRecord],
        left_out: set[Any],
        categories: dict[int, Category],
        report_unknown: bool,
    ) -> None:
        """Attach annotations to their images; ``report_unknown``: one error per unknown category id."""
        seen: dict[Any, int] = {}
        ids_as_text = {str(k): k for k in by_id}
        for index, item in enumerate(raw):
            if not isinstance(item, dict):
                self.error(f"annotations[{index}]", "annotation is not an object" + _LEFT_OUT)
                continue
            ann_id, where = self._annotation_id(index, item, seen)
            image_id = item.get("image_id")
            image = by_id.get(image_id)
            if image_id in left_out:
                continue
            if image is None:
                other = ids_as_text.get(str(image_id))
                hint = f" (an image has id {other!r}: the types differ)" if other is not None else ""
                msg = f"points to image id {image_id!r}, which is not in 'images'{hint}" + _LEFT_OUT
                self.error(where, msg, "fix 'image_id' or add the image")
                continue
            category_id = _as_int(item.get("category_id"))
            if category_id not in categories:
                if report_unknown:
                    raw = item.get("category_id")
                    typed = (
                        " (a category has that id as a number: the types differ)"
                        if any(str(c) == str(raw) for c in categories)
                        else ""
                    )
                    msg = f"unknown category id {raw!r} (known: {sorted(categories)[:20]}){typed}"
                    self.error(where, msg + _LEFT_OUT, "fix 'category_id' or add the category")
                continue
            segm = item.get("segmentation")
            if isinstance(segm, list) and segm:
                segm = self._polygons(segm, where)
            elif isinstance(segm, dict) and segm:
                segm = self._rle(segm, where, image)
            else:
                msg = "missing segmentation (no polygon or RLE)" + _LEFT_OUT
                self.error(where, msg, "export masks (instance segmentation), not only boxes, or delete it")
                continue
            if segm is None:
                continue
            iscrowd = self._crowd_and_area(item, where)
            if iscrowd is None:
                continue
            box = self._box(item, segm, where)
            image.objects.append(ObjectAnn(ann_id, category_id, segm, iscrowd=iscrowd, bbox_xyxy=box))

    def _crowd_and_area(self, item: dict[str, Any], where: str) -> bool | None:
        """``iscrowd`` as a bool (it must be 0 or 1), or ``None`` (reported) when it or ``area`` is malformed."""
        crowd = item.get("iscrowd", 0)
        ok = True
        if not (isinstance(crowd, (int, float)) and crowd in (0, 1)):
            msg = f"'iscrowd' must be 0 (an object) or 1 (a crowd region), got {crowd!r}" + _LEFT_OUT
            self.error(where, msg, "write 0 or 1")
            ok = False
        area = item.get("area")
        if area is not None and not (_is_number(area) and area >= 0):
            msg = f"'area' must be a non-negative number of pixels, got {area!r}" + _LEFT_OUT
            self.error(where, msg, "fix 'area' or remove it (it is computed from the mask)")
            ok = False
        return bool(crowd) if ok else None


def _polygon_area(polygon: list[float]) -> float:
    """Shoelace area of a flat ``[x1, y1, x2, y2, ...]`` polygon, pixels squared."""
    xs, ys = polygon[0::2], polygon[1::2]
    n = len(xs)
    return abs(sum(xs[i] * ys[(i + 1) % n] - xs[(i + 1) % n] * ys[i] for i in range(n))) / 2.0


def _extent(segm: Any) -> tuple[float, float, float, float] | None:
    """``XYXY`` extent of polygons (their coordinates) or of an RLE (its pixels); ``None`` if unknown."""
    if isinstance(segm, list):
        xs = [v for polygon in segm for v in polygon[0::2]]
        ys = [v for polygon in segm for v in polygon[1::2]]
        return min(xs), min(ys), max(xs), max(ys)
    try:
        rle = segm if isinstance(segm["counts"], str) else mask_utils.frPyObjects(segm, *segm["size"])
        if mask_utils.area(rle) == 0:
            return None
        x, y, w, h = (float(v) for v in mask_utils.toBbox(rle))
    except Exception:  # malformed compressed counts: the deep check reports it when decoding
        return None
    return x, y, x + w, y + h


def read_coco(
    json_path: Path | str,
    image_root: Path | str | None = None,
    split: str = "train",
    data_root: Path | str | None = None,
) -> SegDataset:
    """List a COCO json as a :class:`SegDataset` with every problem found by cheap checks.

    Args:
        json_path: the annotation file.
        image_root: folder ``file_name`` is relative to; default the json's folder.
        split: the split's name, for reports.
        data_root: no image may lie outside this folder; default ``image_root``.

    Raises:
        DataError: the file is missing, is not valid JSON, or has no ``images`` list.
    """
    json_path = Path(json_path)
    image_root = Path(image_root) if image_root is not None else json_path.parent
    data_root = Path(data_root) if data_root is not None else image_root
    data = load_json(json_path)
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise DataError(
            f"{json_path} is not a COCO annotation file: the top level must be an object with an 'images' list "
            f"(and 'annotations', 'categories'). Fix: point data.root at the COCO json of the split"
        )
    reader = _Reader(json_path, image_root, data_root)
    raw_annotations = data.get("annotations")
    if raw_annotations is None:
        raw_annotations = []
        msg = "no 'annotations' list: every image is read as having no objects"
        reader.warn(None, msg, "add the annotations, or ignore this for an unlabelled split")
    elif not isinstance(raw_annotations, list):
        raise DataError(f"{json_path}: 'annotations' must be a list, not {type(raw_annotations).__name__}")
    have_categories = isinstance(data.get("categories"), list)
    if not have_categories and raw_annotations:
        msg = f"no 'categories' list, so none of the {len(raw_annotations)} annotations has a class"
        reader.error(None, msg + "; they are left out", "add 'categories': [{'id': 1, 'name': '...'}, ...]")
    categories = reader.categories(data.get("categories"))
    records, by_id, left_out = reader.images(data["images"])
    reader.annotations(raw_annotations, by_id, left_out, {c.id: c for c in categories}, have_categories)
    n_objects = sum(len(r.objects) for r in records)
    counts = (len(records), n_objects, len(categories), len(reader.problems))
    log.debug("%s: %d images, %d objects, %d categories, %d problem(s)", json_path, *counts)
    return SegDataset(
        root=data_root,
        split=split,
        format="coco",
        images=records,
        categories=categories,
        problems=reader.problems,
        annotation_file=json_path,
    )
