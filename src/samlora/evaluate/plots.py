"""The report's figures as PNG bytes (matplotlib's Agg canvas: no display, no pyplot state).

Promptable: per-image Dice distributions per model and data set (box plots with every image as a
dot), click curves (IoU after each click, with the 0.85 / 0.90 NoC targets), and mean ± 95% CI
bars across seeds. Concept: AP per category and precision-recall curves at IoU 0.50.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from .compare import BASE, NOC_THRESHOLDS
from .promptable import ObjectResult, per_image
from .statistics import mean_ci

COLOURS = ("#7f7f7f", "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b")
"""Per-model colours: vanilla grey first, then adapters."""


def _png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=96, bbox_inches="tight")
    return buffer.getvalue()


def _grid(n: int, width: float = 4.2, height: float = 3.2) -> tuple[Figure, list]:
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(width * cols, height * rows), layout="constrained")
    axes = [fig.add_subplot(rows, cols, i + 1) for i in range(n)]
    return fig, axes


def colour_of(models: Sequence[str]) -> dict[str, str]:
    """Model -> colour, vanilla always grey."""
    adapters = [m for m in models if m != BASE]
    out = {BASE: COLOURS[0]}
    out.update({m: COLOURS[1 + i % (len(COLOURS) - 1)] for i, m in enumerate(adapters)})
    return out


def dice_distributions(results: list[ObjectResult], models: list[str], datasets: list[str]) -> bytes:
    """One box plot per data set: the per-image Dice of each model, every image a dot."""
    fig, axes = _grid(len(datasets), width=max(3.0, 1.1 * len(models) + 1.6))
    colours = colour_of(models)
    for ax, ds in zip(axes, datasets):
        values = [
            [v["dice"] for v in per_image([r for r in results if r.model == m and r.dataset == ds]).values()]
            for m in models
        ]
        ax.boxplot(values, showfliers=False, widths=0.55)
        ax.set_xticks(range(1, len(models) + 1), labels=models, rotation=20)
        rng = np.random.default_rng(0)
        for i, (m, v) in enumerate(zip(models, values), start=1):
            ax.scatter(i + rng.uniform(-0.15, 0.15, len(v)), v, s=8, alpha=0.55, color=colours[m], zorder=3)
        ax.set_title(ds)
        ax.set_ylim(-0.02, 1.02)
        ax.set_ylabel("per-image Dice")
        ax.grid(axis="y", alpha=0.3)
    return _png(fig)


def click_curves(clicks: dict[str, dict[str, dict]], models: list[str], datasets: list[str]) -> bytes:
    """One panel per data set: mean IoU after each click per model, the NoC targets dashed."""
    fig, axes = _grid(len(datasets))
    colours = colour_of(models)
    for ax, ds in zip(axes, datasets):
        for m in models:
            c = clicks.get(m, {}).get(ds)
            if c is None:
                continue
            x = np.arange(1, c["clicks"] + 1)
            ax.plot(x, c["iou"], marker="o", ms=3, color=colours[m], label=f"{m} (NoC@85 {c['noc85']:.1f})")
        for t in NOC_THRESHOLDS:
            ax.axhline(t, color="black", lw=0.8, ls="--", alpha=0.5)
        ax.set_title(ds)
        ax.set_xlabel("clicks")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel("mean IoU")
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    return _png(fig)


def seed_bars(cells: dict[str, dict[str, dict]], models: list[str], datasets: list[str]) -> bytes:
    """Per data set: vanilla and the adapters, mean Dice ± 95% CI.

    With several adapters (seeds) the adapter bar is their mean with the Student-t CI across seeds;
    one adapter shows its per-image CI. Vanilla shows its per-image CI.
    """
    adapters = [m for m in models if m != BASE]
    fig = Figure(figsize=(max(4.0, 1.6 * len(datasets) + 1.5), 3.4))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    groups = ([BASE] if BASE in models else []) + (["adapters"] if adapters else [])
    width = 0.8 / max(len(groups), 1)
    x = np.arange(len(datasets))
    for g, group in enumerate(groups):
        means, lows, highs = [], [], []
        for ds in datasets:
            if group == BASE or len(adapters) == 1:
                s = cells[BASE if group == BASE else adapters[0]][ds]["dice"]
                ci = (s["mean"], s["ci_low"], s["ci_high"])
            else:
                ci = tuple(mean_ci([cells[m][ds]["dice"]["mean"] for m in adapters]))
            means.append(ci[0])
            lows.append(ci[0] - ci[1])
            highs.append(ci[2] - ci[0])
        label = (
            group
            if group == BASE
            else (f"{len(adapters)} adapters (CI over seeds)" if len(adapters) > 1 else adapters[0])
        )
        colour = COLOURS[0] if group == BASE else COLOURS[1]
        ax.bar(
            x + g * width - 0.4 + width / 2,
            means,
            width,
            yerr=[lows, highs],
            capsize=4,
            color=colour,
            label=label,
        )
    ax.set_xticks(x, labels=datasets, rotation=15)
    ax.set_ylim(0, 1.02)
    ax.set_ylabel("mean per-image Dice ± 95% CI")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    return _png(fig)


def ap_bars(table: dict[str, dict[str, dict]], models: list[str], dataset: str) -> bytes:
    """Concept models: AP (IoU 0.50:0.95) of every category on ``dataset``, one bar per model."""
    names = table[models[0]][dataset]["categories"]
    cats = sorted(names)
    fig = Figure(figsize=(max(4.0, 0.9 * len(cats) * max(len(models), 1) / 2 + 2), 3.4))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    colours = colour_of(models)
    width = 0.8 / len(models)
    x = np.arange(len(cats))
    for i, m in enumerate(models):
        ap = table[m][dataset]["per_category_AP"]
        values = [ap.get(k, ap.get(str(k), float("nan"))) for k in cats]
        ax.bar(x + i * width - 0.4 + width / 2, np.nan_to_num(values), width, color=colours[m], label=m)
    ax.set_xticks(x, labels=[str(names[k]) for k in cats], rotation=20)
    ax.set_ylim(0, 1.02)
    ax.set_ylabel("AP (IoU 0.50:0.95)")
    ax.set_title(dataset)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    return _png(fig)


def pr_curves(table: dict[str, dict[str, dict]], models: list[str], dataset: str) -> bytes:
    """Concept models: precision against recall at IoU 0.50 (COCOeval's 101 recall points, mean over
    categories), one curve per model."""
    fig = Figure(figsize=(4.4, 3.4))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    colours = colour_of(models)
    for m in models:
        curve = table[m][dataset].get("pr_curve_50")
        if not curve:
            continue
        ax.plot(
            curve["recall"],
            curve["precision"],
            color=colours[m],
            label=f"{m} (AP50 {table[m][dataset]['mAP50']:.3f})",
        )
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_title(f"{dataset}: precision-recall at IoU 0.50")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _png(fig)
