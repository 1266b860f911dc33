"""What a data check found: the report of one split and its summary of the split's contents."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .frame import FrameSample
from .records import Problem, SegDataset

_PERCENTILES = (0, 5, 25, 50, 75, 95, 100)


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
    samples: list[FrameSample | None] | None = None
    """With ``check_dataset(..., frame=...)``: each image as decoded for the check, in that input
    frame (``None`` for an image with errors), so training need not read the files again."""

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


def summarise(ds: SegDataset, results: list, deep: bool) -> dict[str, Any]:
    """The summary of a checked split from its per-image results (see :class:`DataReport`)."""
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
