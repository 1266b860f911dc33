"""Prompts for ``samlora predict``: command-line prompts and per-image prompt files, validated up front.

Two file formats are read:

- JSON: ``{"file.jpg": {"boxes": [[x1, y1, x2, y2], ...], "points": ..., "labels": ...}}``
  where ``points`` is ``P x 2`` (one object) or ``N x P x 2`` (``N`` objects,
  the same number of points each) and ``labels`` has the same shape without
  the last axis (1 foreground, 0 background; default all 1). With both boxes
  and points, give one point set per box.
- COCO: its annotations' boxes become box prompts, keyed by ``file_name``; each
  box keeps its annotation's ``category_id`` and the image its ``id``.

Every problem of a file is reported at once, naming the file and the image
key, before anything is predicted or written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from samlora.errors import SamloraError
from samlora.io.readers import read_json


@dataclass
class ImagePrompts:
    """Prompts for one image, in pixels of the original image.

    ``points`` is ``P x 2`` (one object) or ``N x P x 2``; ``labels`` matches
    it without the last axis. ``category_ids`` gives each box's category (COCO
    prompt files); empty means category 1.
    """

    boxes: list[list[float]] = field(default_factory=list)
    points: list = field(default_factory=list)
    labels: list = field(default_factory=list)
    image_id: int | None = None
    annotations: list[dict] = field(default_factory=list)
    category_ids: list[int] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.boxes or self.points)

    def point_sets(self) -> int:
        """How many objects the points describe (0 without points)."""
        if not self.points:
            return 0
        return len(self.points) if np.asarray(self.points).ndim == 3 else 1


def prompt_problems(prompts: ImagePrompts) -> list[str]:
    """Every problem of one image's prompts (empty when they can be predicted)."""
    problems = []
    for box in prompts.boxes:
        if not _numbers(box, 4):
            problems.append(f"box {box!r} is not 4 numbers x1 y1 x2 y2")
        elif box[2] < box[0] or box[3] < box[1]:
            problems.append(f"box {box!r} is inverted; give x1 y1 x2 y2 with x1 <= x2 and y1 <= y2")
    if prompts.points:
        try:
            pts = np.asarray(prompts.points, dtype=np.float32)
        except (ValueError, TypeError):
            pts = np.zeros(0)
        if pts.ndim not in (2, 3) or pts.shape[-1] != 2 or 0 in pts.shape:
            problems.append(
                f"points {prompts.points!r} must be [[x, y], ...] for one object or "
                "[[[x, y], ...], ...] for several (the same number of points each)"
            )
        else:
            if prompts.labels:
                labels = np.asarray(prompts.labels, dtype=object)
                if labels.shape != pts.shape[:-1] or not all(v in (0, 1) for v in labels.ravel().tolist()):
                    problems.append(
                        f"labels {prompts.labels!r} must be 1 (foreground) or 0 (background), "
                        f"one per point (shape {list(pts.shape[:-1])})"
                    )
            sets = 1 if pts.ndim == 2 else pts.shape[0]
            if prompts.boxes and sets != len(prompts.boxes):
                problems.append(
                    f"{len(prompts.boxes)} box(es) and {sets} point set(s): with both, give one point set per box "
                    "(points that refine a single box need exactly one box)"
                )
    elif prompts.labels:
        problems.append("labels given without points")
    return problems


def read_prompt_file(path: str | Path) -> tuple[dict[str, ImagePrompts], dict[int, str]]:
    """Per-image prompts of a JSON or COCO file, and the file's categories (``{}`` for plain JSON).

    Raises:
        SamloraError: listing every problem of the file, each with its image key.
    """
    data = read_json(path, "prompts file", SamloraError, max_bytes=1 << 30)
    problems: list[str] = []
    if isinstance(data, dict) and "images" in data and "annotations" in data:
        out, categories = _read_coco(data, problems)
    elif isinstance(data, dict):
        out, categories = {}, {}
        for name, spec in data.items():
            if not isinstance(spec, dict) or set(spec) - {"boxes", "points", "labels"}:
                problems.append(f'\'{name}\': expected {{"boxes": [...], "points": [...], "labels": [...]}}')
                continue
            entry = ImagePrompts(
                boxes=spec.get("boxes") or [],
                points=spec.get("points") or [],
                labels=spec.get("labels") or [],
            )
            if not isinstance(entry.boxes, list) or not isinstance(entry.points, list):
                problems.append(f"'{name}': boxes and points must be lists")
                continue
            problems += [f"'{name}': {p}" for p in prompt_problems(entry)]
            if not entry:
                problems.append(f"'{name}': no boxes or points")
            out[name] = entry
    else:
        problems.append("expected a mapping of image file name to prompts, or a COCO file")
        out, categories = {}, {}
    if problems:
        lines = "\n".join(f"  - {p}" for p in problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise SamloraError(
            f"{len(problems)} problem(s) in prompts file {path}; fix them and run again "
            f"(format: samlora predict --help):\n{lines}{more}"
        )
    return out, categories


def _read_coco(data: dict, problems: list[str]) -> tuple[dict[str, ImagePrompts], dict[int, str]]:
    out: dict[str, ImagePrompts] = {}
    by_id: dict[int, str] = {}
    for k, img in enumerate(data.get("images") or []):
        name, image_id = (img.get("file_name"), img.get("id")) if isinstance(img, dict) else (None, None)
        if not isinstance(name, str) or not isinstance(image_id, int) or isinstance(image_id, bool):
            problems.append(f"images[{k}]: needs a 'file_name' string and an integer 'id', got {img!r}")
            continue
        if image_id in by_id:
            problems.append(f"'{name}': image id {image_id} is also used by '{by_id[image_id]}'")
        by_id[image_id] = name
        out[name] = ImagePrompts(image_id=image_id)
    categories = {}
    for cat in data.get("categories") or []:
        if isinstance(cat, dict) and isinstance(cat.get("id"), int):
            categories[cat["id"]] = str(cat.get("name", cat["id"]))
    for k, ann in enumerate(data.get("annotations") or []):
        name = by_id.get(ann.get("image_id")) if isinstance(ann, dict) else None
        if name is None:
            problems.append(f"annotations[{k}]: image_id {ann.get('image_id') if isinstance(ann, dict) else '?'} "
                            "is not among the file's images")  # fmt: skip
            continue
        bbox = ann.get("bbox")
        if not _numbers(bbox, 4) or bbox[2] <= 0 or bbox[3] <= 0:
            problems.append(
                f"'{name}': annotation {ann.get('id', k)} needs a bbox [x, y, w, h] with w, h > 0"
            )
            continue
        category = ann.get("category_id", 1)
        if not isinstance(category, int) or (categories and category not in categories):
            problems.append(
                f"'{name}': annotation {ann.get('id', k)} has category_id {category!r} not in categories"
            )
            continue
        x, y, w, h = bbox
        entry = out[name]
        entry.boxes.append([x, y, x + w, y + h])
        entry.category_ids.append(category)
        entry.annotations.append(ann)
    return out, categories


def _numbers(value: object, n: int) -> bool:
    return (
        isinstance(value, (list, tuple))
        and len(value) == n
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    )


def prompts_for(image: Path, files: dict[str, ImagePrompts], fallback: ImagePrompts) -> ImagePrompts:
    """The prompts a file gives ``image`` (exact path, else the longest matching path ending), else ``fallback``."""
    for key in (str(image), image.as_posix()):
        if key in files:
            return files[key]
    ending = [key for key in files if image.as_posix().endswith("/" + key.removeprefix("./"))]
    return files[max(ending, key=len)] if ending else fallback
