"""The files ``samlora eval`` writes for concept models: report.json, report.md, COCO results.

``report.md`` holds mAP, mAP@50, mAP@75, cgF1, cgF1@50 and cgF1@75 tables (model x data set), the
AP of every category, the image-level parts of cgF1 and, per category, the number of predictions
(at ``eval.score_threshold``) against the number of ground-truth objects: the SAM3-LoRA tool's
"too many predictions" / "too few predictions" scenarios. Each (model, data set) cell's COCO
results go to ``predictions_<model>_<dataset>.json``, loadable with pycocotools' ``loadRes``
against the split's annotation file (real image and category ids, RLE masks at the original size).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

TABLES = (
    ("mAP", "mAP (IoU 0.50:0.95)"),
    ("mAP50", "mAP@50"),
    ("mAP75", "mAP@75"),
    ("cgF1", "cgF1 (IoU 0.50:0.95)"),
    ("cgF1_50", "cgF1@50"),
    ("cgF1_75", "cgF1@75"),
)


def _num(value: float) -> str:
    """Three decimals, ``n/a`` for NaN (e.g. AP of a category without ground truth)."""
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}"


def predictions_name(row: str, column: str) -> str:
    """File name of a cell's COCO results: ``predictions_<row>_<column>.json``, path-safe."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", f"{row}_{column}")
    return f"predictions_{safe}.json"


def _verdict(pred: int, gt: int) -> str:
    return "too many" if pred > gt else ("too few" if pred < gt else "as many")


def concept_markdown(rows: list[str], columns: list[str], table: dict[str, dict[str, dict]]) -> str:
    """The markdown report of ``table[row][column]`` (dicts from ``concept_eval.concept_metrics``)."""
    lines = ["# samlora concept evaluation", ""]
    for key, title in TABLES:
        lines += [f"## {title}", "", f"| model | {' | '.join(columns)} |", "|" + "---|" * (len(columns) + 1)]
        for row in rows:
            lines.append(f"| {row} | {' | '.join(_num(table[row][c][key]) for c in columns)} |")
        lines.append("")
    lines += ["## AP per category (IoU 0.50:0.95)", ""]
    for c in columns:
        names = table[rows[0]][c]["categories"]
        cats = sorted(names)
        lines += [
            f"### {c}",
            "",
            f"| model | {' | '.join(str(names[k]) for k in cats)} |",
            "|" + "---|" * (len(cats) + 1),
        ]
        for row in rows:
            ap = table[row][c]["per_category_AP"]
            lines.append(f"| {row} | {' | '.join(_num(ap.get(k, float('nan'))) for k in cats)} |")
        lines.append("")
    lines += ["## image-level and counts", ""]
    for row in rows:
        for c in columns:
            m = table[row][c]
            lines.append(
                f"- {row} on {c}: pmF1 {_num(m['pmF1'])}, IL_MCC {_num(m['IL_MCC'])}, "
                f"IL precision {_num(m['IL_precision'])}, IL recall {_num(m['IL_recall'])}; "
                f"{m['pairs']} image-category pairs, {m['negative_pairs']} negative, "
                f"{m.get('ignored_pairs', 0)} crowd-only ignored; predictions counted at score >= "
                f"{m['score_threshold']:g}; results in {predictions_name(row, c)}"
            )
            for cat, counts in sorted(m["counts"].items()):
                name = m["categories"].get(cat, cat)
                lines.append(
                    f"  - {name}: {counts['pred']} predictions vs {counts['gt']} ground truth "
                    f"({_verdict(counts['pred'], counts['gt'])})"
                )
            lines += [f"  - note: {n}" for n in m.get("notes", [])]
    return "\n".join(lines) + "\n"


def write_concept_report(
    out: Path,
    rows: list[str],
    columns: list[str],
    table: dict[str, dict[str, dict]],
    predictions: dict[tuple[str, str], list[dict]],
) -> dict:
    """Write report.json, report.md and one COCO results file per (row, column); return the report."""
    out.mkdir(parents=True, exist_ok=True)
    report = {"models": rows, "datasets": columns, "metrics": table}
    (out / "report.json").write_text(json.dumps(report, indent=2, default=float) + "\n")
    (out / "report.md").write_text(concept_markdown(rows, columns, table))
    for (row, column), results in predictions.items():
        (out / predictions_name(row, column)).write_text(json.dumps(results) + "\n")
    return report
