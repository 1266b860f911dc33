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
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .compare import BASE, click_summary, p_text, paired_comparisons, retention, signed
from .page import write_html
from .promptable import PER_OBJECT_COLUMNS, ObjectResult, per_image
from .statistics import summarize

log = logging.getLogger(__name__)
__all__ = ["BASE", "EvalReport", "model_label", "summarize_results", "write_report"]


def model_label(folder: str | Path) -> str:
    """A short row name for an adapter folder (``RUN/best`` -> ``RUN``)."""
    folder = Path(folder)
    return folder.parent.name if folder.name in ("best", "last") else folder.name


PROMPT_TEXT = {
    "box": "each object's tight bounding box",
    "center_point": "one click at each object's interior point farthest from its edge "
    "(best of 3 candidate masks by predicted IoU)",
    "points": "{num_points} positive points drawn in each object (seeded, the same for every model)",
    "clicks": "interactive clicks: click 1 at each object's interior point farthest from its edge, then "
    "{clicks_minus_one} correction clicks, each at the centre of the largest error (positive in a missed "
    "region, negative in a false one){mask}",
}
"""What each ``eval.prompt`` gives every model, for report headers."""


def prompt_text(prompt: str, clicks: int = 5, num_points: int = 3, feed_mask: bool = True) -> str:
    """A sentence naming the evaluation prompt, e.g. for ``box``: "each object's tight bounding box"."""
    mask = ", the previous mask given back as a prompt" if feed_mask else ", clicks only (no mask prompt)"
    return PROMPT_TEXT[prompt].format(num_points=num_points, clicks_minus_one=clicks - 1, mask=mask)


@dataclass
class EvalReport:
    """Everything ``samlora eval`` computed."""

    models: list[str]
    datasets: list[str]
    cells: dict[str, dict[str, dict]]  # model -> dataset -> summary per metric (per-image level)
    objects: dict[str, dict[str, dict]]  # same, object level
    seeds_summary: dict[str, dict[str, float]]  # dataset -> mean/std of adapters' mean Dice
    per_click: dict[str, dict[str, list[float]]]  # model -> dataset -> mean Dice after each click
    results: list[ObjectResult]
    clicks: dict[str, dict[str, dict]] = field(default_factory=dict)  # model -> dataset -> click_summary
    paired: list[dict] = field(default_factory=list)  # compare.paired_comparisons
    retained: list[dict] = field(default_factory=list)  # compare.retention
    settings: dict = field(default_factory=dict)  # prompt mode, split, base model, ... (report header)
    panels: list[dict] = field(default_factory=list)  # dataset, ranked_by, kind, rank, image, file (relative)

    def table(self, metric: str = "dice") -> str:
        """Markdown table: rows models, columns data sets, cells mean ± CI half-width (mean alone for n = 1)."""
        head = f"| model | {' | '.join(self.datasets)} |"
        lines = [head, "|" + "---|" * (len(self.datasets) + 1)]
        for model in self.models:
            cells = []
            for ds in self.datasets:
                s = self.cells[model][ds][metric]
                half = (s["ci_high"] - s["ci_low"]) / 2
                cells.append(f"{s['mean']:.3f} ± {half:.3f}" if s["n"] > 1 else f"{s['mean']:.3f}")
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

    def paired_table(self) -> str:
        """Markdown: per comparison (A − B) and data set, the paired per-image Dice difference."""
        pairs = list(dict.fromkeys((r["model"], r["against"]) for r in self.paired))
        lines = [f"| A − B | {' | '.join(self.datasets)} |", "|" + "---|" * (len(self.datasets) + 1)]
        for a, b in pairs:
            cells = []
            for ds in self.datasets:
                r = next(x for x in self.paired if (x["model"], x["against"], x["dataset"]) == (a, b, ds))
                cells.append(
                    f"{signed(r['mean'])} [{signed(r['ci_low'])}, {signed(r['ci_high'])}], "
                    f"{p_text(r['p'])}, n={r['n']}"
                )
            lines.append(f"| {a} − {b} | {' | '.join(cells)} |")
        return "\n".join(lines)

    def retention_table(self) -> str:
        """Markdown: vanilla vs each adapter on the home-domain data sets, with the verdict."""
        lines = [
            "| data set | model | vanilla | adapter | difference [95% CI] | Wilcoxon | verdict |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in self.retained:
            ds, model = r["dataset"], r["model"]
            vanilla, adapter = self.cells[BASE][ds]["dice"]["mean"], self.cells[model][ds]["dice"]["mean"]
            verdict = {"drop": "**drop beyond the CI**", "gain": "gain", "kept": "kept (0 inside the CI)"}
            lines.append(
                f"| {ds} | {model} | {vanilla:.3f} | {adapter:.3f} | {signed(r['mean'])} "
                f"[{signed(r['ci_low'])}, {signed(r['ci_high'])}] | {p_text(r['p'])} | {verdict[r['verdict']]} |"
            )
        return "\n".join(lines)

    def clicks_table(self, at: tuple[int, ...] = (1, 3, 5)) -> str:
        """Markdown: per model and data set, Dice/IoU after clicks ``at`` and NoC@85/90 (clicks mode)."""
        n = max((c["clicks"] for by_ds in self.clicks.values() for c in by_ds.values()), default=0)
        shown = [k for k in at if k <= n] or [n]
        head = [f"Dice@{k}" for k in shown] + [f"IoU@{k}" for k in shown]
        lines = [
            f"| model | data set | {' | '.join(head)} | NoC@85 | NoC@90 | failed@85 | failed@90 | objects |",
            "|" + "---|" * (len(head) + 7),
        ]
        for model in self.models:
            for ds in self.datasets:
                c = self.clicks.get(model, {}).get(ds)
                if c is None:
                    continue
                values = [f"{c['dice'][k - 1]:.3f}" for k in shown] + [
                    f"{c['iou'][k - 1]:.3f}" for k in shown
                ]
                lines.append(
                    f"| {model} | {ds} | {' | '.join(values)} | {c['noc85']:.2f} | {c['noc90']:.2f} | "
                    f"{c['failed85']} | {c['failed90']} | {c['objects']} |"
                )
        return "\n".join(lines)

    def header(self) -> list[str]:
        """Markdown lines naming the prompt and the settings every row shares."""
        s = self.settings
        if not s:
            return []
        lines = [f"Prompt: {s['prompt_text']} (`eval.prompt {s['prompt']}`)."]
        facts = [f"split `{s['split']}`", f"base model `{s['base_model']}`"]
        facts += [f"mask threshold {s['mask_threshold']:g}", f"samlora {s['samlora_version']}"]
        if s.get("retain"):
            facts.append(f"base model's home domain: {', '.join(s['retain'])}")
        return [*lines, "", "Settings: " + ", ".join(facts) + "."]


def summarize_results(
    results: list[ObjectResult],
    models: list[str],
    datasets: list[str],
    retain: list[str] | None = None,
    settings: dict | None = None,
) -> EvalReport:
    """Means, CIs, the across-adapter (seed) mean ± std, paired comparisons, retention, click curves."""
    cells: dict[str, dict[str, dict]] = defaultdict(dict)
    objects: dict[str, dict[str, dict]] = defaultdict(dict)
    per_click: dict[str, dict[str, list[float]]] = defaultdict(dict)
    clicks: dict[str, dict[str, dict]] = defaultdict(dict)
    keys = ("dice", "iou", "boundary_f1", "hd95")
    for model in models:
        for ds in datasets:
            rs = [r for r in results if r.model == model and r.dataset == ds]
            images = per_image(rs)
            cells[model][ds] = summarize({k: [v[k] for v in images.values()] for k in keys})
            objects[model][ds] = summarize({k: [getattr(r, k) for r in rs] for k in keys})
            curve = click_summary(rs, model, ds)
            if curve is not None:
                clicks[model][ds] = curve
                per_click[model][ds] = curve["dice"]
    adapters = [m for m in models if m != BASE]
    seeds = {}
    if len(adapters) > 1:
        for ds in datasets:
            means = [cells[m][ds]["dice"]["mean"] for m in adapters]
            seeds[ds] = {"mean": float(np.mean(means)), "std": float(np.std(means, ddof=1)), "n": len(means)}
    paired = paired_comparisons(results, models, datasets)
    return EvalReport(
        models, datasets, dict(cells), dict(objects), seeds, dict(per_click), results,
        clicks=dict(clicks), paired=paired, retained=retention(paired, list(retain or [])),
        settings=dict(settings or {}),
    )  # fmt: skip


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


def markdown(report: EvalReport, title: str = "samlora evaluation") -> str:
    """``report.md``: the header, the tables, the paired differences, retention and click curves."""
    md = [f"# {title}", "", *report.header(), ""]
    md += ["Mean per-image Dice (± 95% CI half-width), original resolution.", "", report.table("dice")]
    if report.paired:
        md += [
            "",
            "## Paired differences",
            "",
            "Per-image Dice of A minus B on the same images: mean [bootstrap 95% CI], two-sided Wilcoxon "
            "signed-rank p, images paired.",
            "",
            report.paired_table(),
        ]
    if report.retained:
        md += [
            "",
            "## Retention on the base model's home domain",
            "",
            "What the base model could already do: a drop is flagged when the whole 95% CI of adapter "
            "minus vanilla lies below zero.",
            "",
            report.retention_table(),
        ]
    if report.clicks:
        md += [
            "",
            "## Click curve",
            "",
            "Mean over objects after each click; NoC@85 / NoC@90: clicks to reach IoU 0.85 / 0.90, "
            "capped at the clicks given; failed: objects that never reached it. Every click: "
            "report.json `clicks`.",
            "",
            report.clicks_table(),
        ]
    for metric in ("iou", "boundary_f1", "hd95"):
        md += ["", f"## {metric}", "", report.table(metric).split("\n| adapters")[0]]
    md += ["", *empty_prediction_notes(report)]
    if report.panels:
        md += [
            "",
            "## Panels",
            "",
            "image | ground truth | each adapter | vanilla, with the prompt drawn:",
            "",
        ]
        for ds in report.datasets:
            files = [p for p in report.panels if p["dataset"] == ds]
            md += [f"- {ds}: {len(files)} panels in panels/{ds}/"] if files else []
    return "\n".join(md) + "\n"


def write_report(report: EvalReport, out: Path, title: str = "samlora evaluation") -> None:
    """``report.json``, ``report.md``, ``report.html``, ``per_image.csv`` and ``per_object.csv`` in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    payload = {
        "settings": report.settings,
        "models": report.models,
        "datasets": report.datasets,
        "per_image": report.cells,
        "per_object": report.objects,
        "adapters_mean_std": report.seeds_summary,
        "dice_per_click": report.per_click,
        "clicks": report.clicks,
        "paired": report.paired,
        "retention": report.retained,
        "panels": report.panels,
    }
    (out / "report.json").write_text(json.dumps(payload, indent=2, default=float) + "\n")
    (out / "report.md").write_text(markdown(report, title))
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
    write_html(out, title, markdown(report, title), figures(report), panel_sections(report, out), "## iou")


def figures(report: EvalReport) -> list[tuple[str, bytes]]:
    """The page's figures: Dice distributions, mean ± CI bars, click curves (clicks mode)."""
    from . import plots

    out = [
        (
            "Per-image Dice of each model on each data set (box: quartiles and median; dots: images).",
            plots.dice_distributions(report.results, report.models, report.datasets),
        ),
        (
            "Mean per-image Dice ± 95% CI: vanilla and the adapters (CI across seeds when there are several).",
            plots.seed_bars(report.cells, report.models, report.datasets),
        ),
    ]
    if report.clicks:
        out.append(
            (
                "Click curves: mean IoU over objects after each click; dashed: the NoC targets 0.85 and 0.90.",
                plots.click_curves(report.clicks, report.models, report.datasets),
            )
        )
    return out


def panel_sections(report: EvalReport, out: Path) -> list[tuple[str, list[tuple[str, Path]]]]:
    """Panels grouped per data set and ranking model, for the page."""
    groups: dict[tuple[str, str], list[tuple[str, Path]]] = defaultdict(list)
    for p in report.panels:
        caption = f"{p['kind']} {p['rank']} by {p['ranked_by']}: {p['image']}"
        groups[(p["dataset"], p["ranked_by"])].append((caption, out / p["file"]))
    return [(f"{ds}: best and worst images of {model}", files) for (ds, model), files in groups.items()]
