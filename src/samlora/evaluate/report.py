"""The promptable evaluation's tables and files: adapters vs the vanilla base, over several data sets.

Rows are models (the vanilla base, each adapter: e.g. one per seed), columns
are data sets; every cell is the mean per-image Dice with its 95% confidence
interval, computed at the original image resolution. All models see identical
inputs and prompts. Reports: ``report.json``, ``report.md``, ``per_image.csv``,
``per_object.csv`` and panels of the worst and best images.
"""

from __future__ import annotations

import csv
import json
import logging
import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .promptable import PER_OBJECT_COLUMNS, ObjectResult, per_image
from .statistics import summarize

log = logging.getLogger(__name__)
BASE = "vanilla"


def model_label(folder: str | Path) -> str:
    """A short row name for an adapter folder (``RUN/best`` -> ``RUN``)."""
    folder = Path(folder)
    return folder.parent.name if folder.name in ("best", "last") else folder.name


@dataclass
class EvalReport:
    """Everything ``samlora eval`` computed."""

    models: list[str]
    datasets: list[str]
    cells: dict[str, dict[str, dict]]  # model -> dataset -> summary per metric (per-image level)
    objects: dict[str, dict[str, dict]]  # same, object level
    seeds_summary: dict[str, dict[str, float]]  # dataset -> mean/std of adapters' mean Dice
    per_click: dict[str, dict[str, list[float]]]
    results: list[ObjectResult]

    def table(self, metric: str = "dice") -> str:
        """Markdown table: rows models, columns data sets, cells mean ± CI half-width."""
        head = f"| model | {' | '.join(self.datasets)} |"
        lines = [head, "|" + "---|" * (len(self.datasets) + 1)]
        for model in self.models:
            cells = []
            for ds in self.datasets:
                s = self.cells[model][ds][metric]
                half = (s["ci_high"] - s["ci_low"]) / 2 if s["n"] > 1 else 0.0
                cells.append(f"{s['mean']:.3f} ± {half:.3f}")
            lines.append(f"| {model} | {' | '.join(cells)} |")
        if self.seeds_summary:
            cells = [
                f"{self.seeds_summary[ds]['mean']:.3f} ± {self.seeds_summary[ds]['std']:.3f}"
                for ds in self.datasets
            ]
            lines.append(
                f"| adapters: mean ± std over {self.seeds_summary[self.datasets[0]]['n']} | {' | '.join(cells)} |"
            )
        return "\n".join(lines)


def summarize_results(results: list[ObjectResult], models: list[str], datasets: list[str]) -> EvalReport:
    """Means, CIs and the across-adapter (seed) mean ± std."""
    cells: dict[str, dict[str, dict]] = defaultdict(dict)
    objects: dict[str, dict[str, dict]] = defaultdict(dict)
    per_click: dict[str, dict[str, list[float]]] = defaultdict(dict)
    for model in models:
        for ds in datasets:
            rs = [r for r in results if r.model == model and r.dataset == ds]
            images = per_image(rs)
            keys = ("dice", "iou", "boundary_f1", "hd95")
            cells[model][ds] = summarize({k: [v[k] for v in images.values()] for k in keys})
            objects[model][ds] = summarize({k: [getattr(r, k) for r in rs] for k in keys})
            if rs and rs[0].dice_per_click:
                per_click[model][ds] = [
                    float(np.mean([r.dice_per_click[c] for r in rs]))
                    for c in range(len(rs[0].dice_per_click))
                ]
    adapters = [m for m in models if m != BASE]
    seeds = {}
    if len(adapters) > 1:
        for ds in datasets:
            means = [cells[m][ds]["dice"]["mean"] for m in adapters]
            seeds[ds] = {"mean": float(np.mean(means)), "std": float(np.std(means, ddof=1)), "n": len(means)}
    return EvalReport(models, datasets, dict(cells), dict(objects), seeds, dict(per_click), results)


def empty_prediction_notes(report: EvalReport) -> list[str]:
    """Markdown lines: per model and data set, how many objects got an empty predicted mask.

    Their HD95 is undefined (nan) and left out of the HD95 mean, so a model that misses objects
    entirely must not look better there: the count is shown beside the table.
    """
    lines = [
        "HD95 is undefined for an object whose predicted mask is empty; such objects are left out "
        "of its mean and counted here:",
        "",
    ]
    for model in report.models:
        for ds in report.datasets:
            rs = [r for r in report.results if r.model == model and r.dataset == ds]
            empty = sum(math.isnan(r.hd95) for r in rs)
            lines.append(f"- {model} on {ds}: {empty} of {len(rs)} objects with an empty prediction")
    return lines


def write_report(report: EvalReport, out: Path, title: str = "samlora evaluation") -> None:
    """``report.json``, ``report.md``, ``per_image.csv`` and ``per_object.csv`` in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    payload = {
        "models": report.models,
        "datasets": report.datasets,
        "per_image": report.cells,
        "per_object": report.objects,
        "adapters_mean_std": report.seeds_summary,
        "dice_per_click": report.per_click,
    }
    (out / "report.json").write_text(json.dumps(payload, indent=2, default=float) + "\n")
    md = [
        f"# {title}",
        "",
        "Mean per-image Dice (± 95% CI half-width), original resolution.",
        "",
        report.table("dice"),
    ]
    for metric in ("iou", "boundary_f1", "hd95"):
        md += ["", f"## {metric}", "", report.table(metric).split("\n| adapters")[0]]
    md += ["", *empty_prediction_notes(report)]
    (out / "report.md").write_text("\n".join(md) + "\n")
    with (out / "per_object.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(PER_OBJECT_COLUMNS)
        for r in report.results:
            writer.writerow([getattr(r, column) for column in PER_OBJECT_COLUMNS])
    with (out / "per_image.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["model", "dataset", "image", "objects", "dice", "iou", "boundary_f1", "hd95"])
        for model in report.models:
            for ds in report.datasets:
                rs = [r for r in report.results if r.model == model and r.dataset == ds]
                for image, m in per_image(rs).items():
                    writer.writerow(
                        [model, ds, image, m["objects"], m["dice"], m["iou"], m["boundary_f1"], m["hd95"]]
                    )
