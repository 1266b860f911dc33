"""``samlora eval`` for promptable models: adapters vs the vanilla base, over several data sets.

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
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .config import Config
from .metrics import boundary_f1, hd95, summarize
from .models.loading import LoadedModel
from .tasks.promptable import to_device
from .tasks.promptable_data import PromptableDataset
from .tasks.promptable_eval import object_scores, predict_rounds
from .train.loop import make_loader

log = logging.getLogger(__name__)
BASE = "vanilla"
PER_OBJECT_COLUMNS = (
    "model",
    "dataset",
    "image",
    "object",
    "category_id",
    "area",
    "dice",
    "iou",
    "boundary_f1",
    "hd95",
)
"""Columns of ``per_object.csv`` (fields of :class:`ObjectResult`)."""


@dataclass
class ObjectResult:
    """Metrics of one object under one model, at the original resolution."""

    model: str
    dataset: str
    image: str
    object: int
    category_id: int
    area: int
    """Pixels of the object's ground-truth mask at the original resolution (ignore regions removed)."""
    dice: float
    iou: float
    boundary_f1: float
    hd95: float
    dice_per_click: list[float] = field(default_factory=list)


def autocast_for(device: torch.device, precision: str):
    """An autocast context for ``precision`` (no, bf16, fp16) on ``device``."""
    if precision == "no":
        return nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


@torch.no_grad()
def evaluate_dataset(
    model: torch.nn.Module,
    loaded: LoadedModel,
    dataset: PromptableDataset,
    cfg: Config,
    label: str,
    name: str,
    device: torch.device,
    precision: str = "no",
    indices: list[int] | None = None,
) -> list[ObjectResult]:
    """Per-object metrics of one model on one data set (same prompts for every model)."""
    ev = cfg.eval
    loader = make_loader(
        dataset,
        indices if indices is not None else range(len(dataset)),
        ev.batch_size,
        list,
        cfg.train.num_workers,
    )
    results: list[ObjectResult] = []
    for samples in loader:
        batch = to_device(samples, loaded.preprocessing, device)
        if batch.num_objects == 0:
            continue
        with autocast_for(device, precision):
            rounds, _ = predict_rounds(model, loaded, batch, ev.prompt, ev.clicks)
        ignores = [s.ignore for s in samples]
        per_click = [object_scores(r, batch, ignores, ev.mask_threshold)[0].tolist() for r in rounds]
        dice, iou = object_scores(rounds[-1], batch, ignores, ev.mask_threshold)
        k = 0
        for i, sample in enumerate(samples):
            pred_all = (rounds[-1][i] > ev.mask_threshold).cpu().numpy()
            keep = ~sample.ignore.numpy() if sample.ignore is not None else None
            for j in range(sample.masks.shape[0]):
                pred, target = pred_all[j], sample.masks[j].numpy()
                if keep is not None:
                    pred, target = pred & keep, target & keep
                results.append(
                    ObjectResult(
                        model=label,
                        dataset=name,
                        image=sample.file_name,
                        object=j,
                        category_id=int(sample.category_ids[j]),
                        area=int(target.sum()),
                        dice=float(dice[k]),
                        iou=float(iou[k]),
                        boundary_f1=boundary_f1(pred, target, ev.boundary_tolerance),
                        hd95=hd95(pred, target),
                        dice_per_click=[float(c[k]) for c in per_click] if len(rounds) > 1 else [],
                    )
                )
                k += 1
    return results


def per_image(results: list[ObjectResult]) -> dict[str, dict[str, float]]:
    """Image -> mean of its objects' metrics (nan-aware for HD95)."""
    groups: dict[str, list[ObjectResult]] = defaultdict(list)
    for r in results:
        groups[r.image].append(r)
    out = {}
    for image, rs in groups.items():
        hd = [r.hd95 for r in rs if not math.isnan(r.hd95)]
        out[image] = {
            "objects": len(rs),
            "dice": float(np.mean([r.dice for r in rs])),
            "iou": float(np.mean([r.iou for r in rs])),
            "boundary_f1": float(np.mean([r.boundary_f1 for r in rs])),
            "hd95": float(np.mean(hd)) if hd else math.nan,
        }
    return out


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
