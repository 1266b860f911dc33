"""Promptable evaluation of one model on one data set: per-object metrics at the original resolution.

Every model sees the same images and the same prompts (``eval.prompt``: box, point or
correction clicks), so rows of the report compare like with like.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import torch

from samlora.config import Config
from samlora.data.loader import make_loader
from samlora.models.device import autocast_for
from samlora.models.loading import LoadedModel
from samlora.tasks.promptable.data import PromptableDataset
from samlora.tasks.promptable.metrics import boundary_f1, hd95
from samlora.tasks.promptable.scoring import object_scores, predict_rounds
from samlora.tasks.promptable.segmenter import to_device

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
    """Clicks mode: Dice after click 1..N (the last equals ``dice``); empty otherwise."""
    iou_per_click: list[float] = field(default_factory=list)
    """Clicks mode: IoU after click 1..N."""


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
    clicks_mode = ev.prompt == "clicks"
    for samples in loader:
        batch = to_device(samples, loaded.preprocessing, device)
        if batch.num_objects == 0:
            continue
        ignores = [s.ignore for s in samples]
        with autocast_for(device, precision):
            rounds, _ = predict_rounds(
                model, loaded, batch, ev.prompt, ev.clicks, ignores, ev.mask_threshold, ev.feed_mask
            )
        per_click = [object_scores(r, batch, ignores, ev.mask_threshold) for r in rounds]
        dice, iou = per_click[-1]
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
                        dice_per_click=[float(d[k]) for d, _ in per_click] if clicks_mode else [],
                        iou_per_click=[float(u[k]) for _, u in per_click] if clicks_mode else [],
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
