"""The run's metrics log (JSON lines) and its loss-curve plot.

A kill can tear only the last line of ``metrics.jsonl`` (records are appended one line at a
time); readers skip a torn line and ``--resume`` drops it with every record after the resume
state's step. A full disk or a read-only folder is a :class:`TrainingError` naming the file.
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Any

from samlora.errors import TrainingError
from samlora.io.atomic import append_line, write_text
from samlora.io.disk import describe, fix_for

log = logging.getLogger(__name__)

LOG_FILE = "metrics.jsonl"


def _records(text: str) -> list[dict[str, Any]]:
    """The complete records of a log's text (a line torn by a kill, or not an object, is skipped)."""
    out = []
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            out.append(record)
    return out


class MetricsLog:
    """Append-only ``metrics.jsonl``: one JSON object per logged event (train step or validation)."""

    def __init__(self, run_dir: Path, enabled: bool = True):
        self.path = Path(run_dir) / LOG_FILE
        self.enabled = enabled

    def write(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        clean = {k: (float(v) if hasattr(v, "item") else v) for k, v in record.items()}
        try:
            append_line(self.path, json.dumps(clean))
        except OSError as err:
            raise TrainingError(
                f"cannot write the metrics log {self.path}: {describe(err)}; {fix_for(err)}, then continue "
                f"with `samlora train --resume {self.path.parent}` (nothing saved before was lost)"
            ) from err

    def truncate_after(self, step: int) -> None:
        """Drop records written after ``step`` (a resumed run rewrites them identically)."""
        if not self.enabled or not self.path.exists():
            return
        kept = [r for r in _records(self.path.read_text(errors="replace")) if r.get("step", 0) <= step]
        write_text(self.path, "".join(json.dumps(r) + "\n" for r in kept))


def read_log(run_dir: Path) -> list[dict[str, Any]]:
    """Every record of a run's metrics log."""
    path = Path(run_dir) / LOG_FILE
    if not path.exists():
        return []
    return _records(path.read_text(errors="replace"))


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
    try:
        fig.savefig(tmp)
        os.replace(tmp, out)
    except OSError as err:  # the run is complete; only its picture is missing
        tmp.unlink(missing_ok=True)
        log.warning("could not write %s: %s; the run itself is complete", out, describe(err))
    finally:
        plt.close(fig)
    return out
