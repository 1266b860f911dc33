"""The run's metrics log (JSON lines) and its loss-curve plot."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

LOG_FILE = "metrics.jsonl"


class MetricsLog:
    """Append-only ``metrics.jsonl``: one JSON object per logged event (train step or validation)."""

    def __init__(self, run_dir: Path, enabled: bool = True):
        self.path = Path(run_dir) / LOG_FILE
        self.enabled = enabled

    def write(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        clean = {k: (float(v) if hasattr(v, "item") else v) for k, v in record.items()}
        with self.path.open("a") as f:
            f.write(json.dumps(clean) + "\n")

    def truncate_after(self, step: int) -> None:
        """Drop records written after ``step`` (a resumed run rewrites them identically)."""
        if not self.enabled or not self.path.exists():
            return
        kept = [
            line
            for line in self.path.read_text().splitlines()
            if line and json.loads(line).get("step", 0) <= step
        ]
        tmp = self.path.with_name(f".{LOG_FILE}.tmp-{os.getpid()}")
        tmp.write_text("".join(line + "\n" for line in kept))
        os.replace(tmp, self.path)


def read_log(run_dir: Path) -> list[dict[str, Any]]:
    """Every record of a run's metrics log."""
    path = Path(run_dir) / LOG_FILE
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def plot_loss_curve(run_dir: Path, out: Path | None = None) -> Path:
    """``loss_curve.png``: training loss per step and validation loss/metric per validation."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = read_log(run_dir)
    train = [
        (r["step"], r["loss"])
        for r in records
        if r.get("split") == "train" and math.isfinite(r.get("loss", math.nan))
    ]
    valid = [r for r in records if r.get("split") == "valid"]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    if train:
        ax.plot(*zip(*train), label="train loss", color="tab:blue", linewidth=1)
    if valid and "loss" in valid[0]:
        ax.plot(
            [r["step"] for r in valid],
            [r["loss"] for r in valid],
            "o-",
            label="valid loss",
            color="tab:orange",
        )
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    metric_key = next((k for k in ("dice", "cgF1", "mAP") if valid and k in valid[0]), None)
    if metric_key:
        ax2 = ax.twinx()
        ax2.plot(
            [r["step"] for r in valid],
            [r[metric_key] for r in valid],
            "s--",
            color="tab:green",
            label=f"valid {metric_key}",
        )
        ax2.set_ylabel(metric_key)
        ax2.set_ylim(0, 1)
        lines = ax.get_legend_handles_labels()
        lines2 = ax2.get_legend_handles_labels()
        ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], loc="center right")
    elif train or valid:
        ax.legend()
    fig.tight_layout()
    out = Path(out or Path(run_dir) / "loss_curve.png")
    tmp = out.with_name(f".{out.stem}.tmp-{os.getpid()}{out.suffix}")  # the suffix picks the format
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, out)
    return out
