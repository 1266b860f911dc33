"""What the demo reports: ``results.json`` and its README, from the evaluation reports.

Per prompt (clicks, box): vanilla and LoRA mean per-image Dice per site, LoRA as mean ± std over
seeds (the mean alone for one seed); the click curve at clicks 1, 3 and 5 and NoC@85; and
retention on the reference model's own synthetic source domain: vanilla against each seed with
the paired 95% CI, and whether the adapter switched off gives the vanilla figures exactly.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from samlora.evaluate.promptable import per_image
from samlora.evaluate.report import BASE, EvalReport

CURVE_AT = (1, 3, 5)
"""Clicks at which the demo reports Dice (the field's 1/3/5-click figures)."""
SOURCE = "source"
"""Column of the reference model's source-domain test images (its home domain)."""


def dice_after(report: EvalReport, model: str, dataset: str, clicks: int | None = None) -> float:
    """Mean per-image Dice of ``model`` on ``dataset``, after ``clicks`` clicks in clicks mode."""
    rows = [r for r in report.results if r.model == model and r.dataset == dataset]
    if clicks is not None:
        rows = [replace(r, dice=r.dice_per_click[clicks - 1]) for r in rows]
    return float(np.mean([v["dice"] for v in per_image(rows).values()]))


def over_seeds(values: list[float]) -> dict:
    """Mean, sample std (Bessel; ``None`` for one seed) and the values."""
    return {
        "mean": float(np.mean(values)),
        "std": float(np.std(values, ddof=1)) if len(values) > 1 else None,
        "seeds": values,
    }


def _cells(report: EvalReport, sites: list[str], clicks: int | None = None) -> dict:
    adapters = [m for m in report.models if m != BASE]
    return {
        "vanilla": {s: dice_after(report, BASE, s, clicks) for s in sites},
        "lora": {s: over_seeds([dice_after(report, m, s, clicks) for m in adapters]) for s in sites},
    }


def summarize_reports(reports: dict[str, EvalReport], sites: list[str], exact: bool) -> dict:
    """``dice`` (per table: ``box``, ``click_1``, ``click_3``, ``click_5``), ``noc85`` and ``retention``."""
    clicks, box = reports["clicks"], reports["box"]
    adapters = [m for m in box.models if m != BASE]
    dice = {f"click_{k}": _cells(clicks, sites, k) for k in CURVE_AT}
    dice["box"] = _cells(box, sites)
    noc = {
        "clicks": clicks.settings.get("clicks"),
        "vanilla": {s: clicks.clicks[BASE][s]["noc85"] for s in sites},
        "lora": {s: over_seeds([clicks.clicks[m][s]["noc85"] for m in adapters]) for s in sites},
    }
    retention = {"dataset": SOURCE, "vanilla_exact": exact}
    for prompt, report in (("box", box), ("clicks", clicks)):  # the report's own paired rows: final Dice
        rows = {r["model"]: r for r in report.retained}
        retention[prompt] = {
            "vanilla": dice_after(report, BASE, SOURCE),
            "lora": over_seeds([dice_after(report, m, SOURCE) for m in adapters]),
            "seeds": [
                {k: rows[m][k] for k in ("model", "mean", "ci_low", "ci_high", "p", "n", "verdict")}
                for m in adapters
            ],
        }
    return {"dice": dice, "noc85": noc, "retention": retention}


def _lora_cell(cell: dict, digits: int = 3) -> str:
    return f"{cell['mean']:.{digits}f}" + (f" ± {cell['std']:.{digits}f}" if cell["std"] is not None else "")


def summary_table(summary: dict, key: str) -> str:
    """Markdown table of one ``dice`` entry: vanilla and LoRA (mean ± std over seeds) per site."""
    cells = summary["dice"][key]
    sites = list(cells["vanilla"])
    n = len(summary["plan"]["seeds"])
    lines = [f"| model | {' | '.join(sites)} |", "|---|" + "---|" * len(sites)]
    lines.append("| vanilla | " + " | ".join(f"{cells['vanilla'][s]:.3f}" for s in sites) + " |")
    label = f"LoRA ({n} seeds)" if n > 1 else "LoRA (1 seed)"
    lines.append(f"| {label} | " + " | ".join(_lora_cell(cells["lora"][s]) for s in sites) + " |")
    return "\n".join(lines)


def clicks_table(summary: dict) -> str:
    """Markdown: Dice after 1, 3, 5 clicks and NoC@85, vanilla and LoRA, per site."""
    sites = list(summary["dice"]["box"]["vanilla"])
    noc = summary["noc85"]
    lines = [f"| model | {' | '.join(sites)} |", "|---|" + "---|" * len(sites)]
    for k in CURVE_AT:
        cells = summary["dice"][f"click_{k}"]
        lines.append(
            f"| vanilla, {k} click{'s' if k > 1 else ''} | "
            + " | ".join(f"{cells['vanilla'][s]:.3f}" for s in sites)
            + " |"
        )
        lines.append(
            f"| LoRA, {k} click{'s' if k > 1 else ''} | "
            + " | ".join(_lora_cell(cells["lora"][s]) for s in sites)
            + " |"
        )
    lines.append("| vanilla, NoC@85 | " + " | ".join(f"{noc['vanilla'][s]:.1f}" for s in sites) + " |")
    lines.append("| LoRA, NoC@85 | " + " | ".join(_lora_cell(noc["lora"][s], 1) for s in sites) + " |")
    return "\n".join(lines)


def retention_table(summary: dict) -> str:
    """Markdown: on the source domain, vanilla vs LoRA per seed with the paired CI and the verdict."""
    r = summary["retention"]
    lines = ["| prompt | vanilla | LoRA | seed: LoRA − vanilla [95% CI], verdict |", "|---|---|---|---|"]
    names = {"box": "tight box", "clicks": f"{summary['noc85']['clicks']} clicks"}
    for prompt, name in names.items():
        seeds = "; ".join(
            f"{s['model']}: {s['mean']:+.3f} [{s['ci_low']:+.3f}, {s['ci_high']:+.3f}], {s['verdict']}"
            for s in r[prompt]["seeds"]
        )
        lines.append(f"| {name} | {r[prompt]['vanilla']:.3f} | {_lora_cell(r[prompt]['lora'])} | {seeds} |")
    return "\n".join(lines)


PROMPT_TEXT = {
    "click_1": "one click: the lesion's interior point farthest from its edge",
    "box": "the lesion's tight bounding box",
}


def markdown(summary: dict) -> str:
    """The demo's README.md."""
    seeds = summary["plan"]["seeds"]
    spread = f"mean ± std over seeds {seeds}" if len(seeds) > 1 else f"seed {seeds[0]}"
    lines = [
        "# samlora demo: LoRA adapts a pretrained segmenter to a shifted domain",
        "",
        f"Mean Dice per test image, vanilla reference model vs LoRA ({spread}). Site A is the training "
        "site; B, C, D are unseen.",
    ]
    for key in ("click_1", "box"):
        lines += ["", f"Prompt: {PROMPT_TEXT[key]}.", "", summary_table(summary, key)]
    n = summary["noc85"]["clicks"]
    lines += [
        "",
        f"Interactive clicks (click 1 at the lesion's centre, each next click at the centre of the largest "
        f"error; no mask prompt, which the reference model was never trained with; NoC@85: clicks to reach "
        f"IoU 0.85, at most {n}):",
        "",
        clicks_table(summary),
        "",
        "Retention on the reference model's own synthetic source domain (held-out images of its model "
        "card; a drop is flagged when the whole paired 95% CI lies below zero):",
        "",
        retention_table(summary),
        "",
        f"Adapter switched off gives the vanilla figures exactly: {summary['retention']['vanilla_exact']}.",
        "",
        f"Trainable parameters: {summary['trainable_parameters']:,}; adapter file: "
        f"{summary['adapter_bytes'] / 1024:.0f} KiB; base weights unchanged: {summary['base_unchanged']}; "
        f"wall time {summary['seconds']:.0f} s.",
        "",
        "```",
        summary["parameter_report"],
        "```",
        "",
        "Open eval_clicks/report.html and eval_box/report.html (tables, paired statistics, plots, panels). "
        "Loss curves: runs/seed_*/loss_curve.png.",
    ]
    return "\n".join(lines) + "\n"
