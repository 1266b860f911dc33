"""Comparisons between the rows of a promptable evaluation: paired differences, retention, click curves.

Every comparison pairs two models on the same images of one data set (per-image Dice, the unit of
the main table): adapter vs vanilla and adapter vs adapter (e.g. seed vs seed), with scipy's
bootstrap CI and Wilcoxon p of :func:`~samlora.evaluate.statistics.paired_difference`. Retention
is that comparison on a data set marked as the base model's home domain (``--retain``): a drop
is flagged when the whole interval lies below zero. Click curves and NoC summarise clicks mode.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np

from samlora.tasks.promptable.scoring import clicks_to_reach

from .promptable import ObjectResult, per_image
from .statistics import paired_difference

BASE = "vanilla"
"""Row name of the untouched base model (adapters disabled)."""
NOC_THRESHOLDS = (0.85, 0.90)
"""IoU targets of NoC@85 and NoC@90."""


def _per_image(results: list[ObjectResult], model: str, dataset: str, metric: str) -> dict[str, float]:
    rows = [r for r in results if r.model == model and r.dataset == dataset]
    return {image: values[metric] for image, values in per_image(rows).items()}


def compare_models(
    results: list[ObjectResult], a: str, b: str, dataset: str, metric: str = "dice"
) -> dict[str, float | int | str]:
    """``a`` minus ``b`` on the images of ``dataset`` both were scored on (per-image means)."""
    left, right = _per_image(results, a, dataset, metric), _per_image(results, b, dataset, metric)
    images = sorted(set(left) & set(right))
    stats = paired_difference([left[i] for i in images], [right[i] for i in images])
    return {"model": a, "against": b, "dataset": dataset, "metric": metric, **stats}


def paired_comparisons(results: list[ObjectResult], models: list[str], datasets: list[str]) -> list[dict]:
    """Every adapter against the vanilla base (when evaluated), then every pair of adapters."""
    adapters = [m for m in models if m != BASE]
    pairs = [(m, BASE) for m in adapters if BASE in models] + list(combinations(adapters, 2))
    return [compare_models(results, a, b, ds) for a, b in pairs for ds in datasets]


def retention(paired: list[dict], retain: list[str]) -> list[dict]:
    """The adapter-vs-vanilla comparisons on the home-domain data sets, each with a verdict.

    ``drop``: the whole CI of adapter minus vanilla lies below zero (a loss beyond the noise of
    the test images); ``gain``: the whole CI above zero; ``kept``: zero inside the CI.
    """
    out = []
    for row in paired:
        if row["dataset"] in retain and row["against"] == BASE:
            low, high = row["ci_low"], row["ci_high"]
            verdict = "drop" if high < 0 else ("gain" if low > 0 else "kept")
            out.append(dict(row, verdict=verdict))
    return out


def click_summary(results: list[ObjectResult], model: str, dataset: str) -> dict | None:
    """Clicks mode: mean Dice and IoU over objects after each click, NoC@85/90 and failures.

    ``noc85`` is the mean over objects of the clicks needed to reach IoU 0.85, capped at ``N`` (the
    clicks given); ``failed85`` counts the objects that never reached it. ``None`` outside clicks mode.
    """
    rows = [r for r in results if r.model == model and r.dataset == dataset and r.iou_per_click]
    if not rows:
        return None
    dice = np.array([r.dice_per_click for r in rows], dtype=np.float64)
    iou = np.array([r.iou_per_click for r in rows], dtype=np.float64)
    out: dict = {
        "objects": len(rows),
        "clicks": int(iou.shape[1]),
        "dice": dice.mean(axis=0).tolist(),
        "iou": iou.mean(axis=0).tolist(),
    }
    for threshold in NOC_THRESHOLDS:
        key = f"{round(threshold * 100)}"
        noc = clicks_to_reach(iou, threshold)
        out[f"noc{key}"] = float(noc.mean())
        out[f"failed{key}"] = int((iou.max(axis=1) < threshold).sum())
    return out


def signed(value: float) -> str:
    """``+0.123`` / ``-0.045``: a difference with its sign."""
    return f"{value:+.3f}"


def p_text(p: float) -> str:
    """A p-value in a table: ``p=0.032``, ``p<0.001``, ``p n/a``."""
    if p != p:  # nan
        return "p n/a"
    return "p<0.001" if p < 0.001 else f"p={p:.3f}"
