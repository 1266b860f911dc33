"""Finite, sane ranges for every numeric key (the upper bounds and the ones the value checks lack).

:func:`~samlora.config.io.validate_values` holds the lower bounds and the consistency checks;
this table adds what no sane run uses: a non-finite number anywhere (``train.lr: .inf`` would
train to an all-NaN adapter), and values past an upper bound (``train.max_steps: 1e26``). Keys
not in the table still get a generic bound, so every numeric key has a range.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from .schema import Config

_SEED = 2**32 - 1  # numpy's seeds are 32-bit
_LOSS_WEIGHT = 1e6
GENERIC_BOUND = 10**12
"""Bound of ``|value|`` for numeric keys without an entry below."""

RANGES: dict[str, tuple[float | None, float, str]] = {
    "lora.rank": (None, 4096, ""),
    "lora.alpha": (None, 1e6, ""),
    "data.min_object_area": (None, 10**12, ""),
    "data.objects_per_image": (None, 10_000, ""),
    "data.max_pixels": (0, 10**12, " (0: no limit)"),
    "data.split_seed": (0, _SEED, ""),
    "prompts.box_jitter_max_px": (None, 1e6, ""),
    "prompts.max_points": (None, 1000, ""),
    "prompts.negative_points": (None, 1000, ""),
    "prompts.correction_clicks": (None, 100, ""),
    "prompts.negatives_per_image": (None, 10_000, ""),
    "augment.scale_min": (None, 100, ""),
    "augment.scale_max": (None, 100, ""),
    "augment.brightness": (None, 10, ""),
    "augment.contrast": (None, 10, ""),
    "augment.saturation": (None, 10, ""),
    "augment.hue": (None, 0.5, " (a fraction of the colour circle)"),
    "train.epochs": (None, 1_000_000, ""),
    "train.max_steps": (None, 1_000_000_000, ""),
    "train.batch_size": (None, 65_536, ""),
    "train.lr": (None, 1.0, " (LoRA learning rates are usually 1e-5 to 1e-3)"),
    "train.weight_decay": (None, 100.0, ""),
    "train.grad_accum": (None, 65_536, ""),
    "train.grad_clip": (None, 1e6, ""),
    "train.seed": (0, _SEED, ""),
    "train.num_workers": (None, 1024, ""),
    "train.warmup_steps": (None, 1_000_000_000, ""),
    "train.eval_every": (None, 1_000_000_000, ""),
    "train.patience": (None, 1_000_000, ""),
    "train.log_every": (None, 1_000_000_000, ""),
    "loss.focal_alpha": (0, 1, ""),
    "loss.focal_gamma": (0, 100, ""),
    "loss.boundary_width": (None, 1000, ""),
    "eval.num_points": (None, 1000, ""),
    "eval.clicks": (None, 100, ""),
    "eval.batch_size": (None, 65_536, ""),
    "eval.mask_threshold": (-1e4, 1e4, " (a logit)"),
    "eval.top_k": (None, 1_000_000, ""),
    "eval.boundary_tolerance": (0, 1e4, ""),
    "eval.panels": (None, 1000, ""),
}
"""key -> (lower bound or ``None`` when validate_values checks it, upper bound, note)."""
for _weight in ("dice", "focal", "boundary", "iou", "boundary_weight", "set_class", "set_presence", "set_bbox",
                "set_giou", "set_mask", "set_dice", "match_class", "match_bbox", "match_giou"):  # fmt: skip
    RANGES[f"loss.{_weight}"] = (None, _LOSS_WEIGHT, "")


def numeric_values(cfg: Any, prefix: str = "") -> dict[str, int | float]:
    """Every numeric leaf of a config tree (not booleans): dotted key -> value."""
    out: dict[str, int | float] = {}
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            out.update(numeric_values(value, f"{prefix}{f.name}."))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[prefix + f.name] = value
    return out


def _show(value: float) -> str:
    return str(value) if isinstance(value, int) and abs(value) < 10**13 else f"{value:.6g}"


def range_problems(cfg: Config) -> list[str]:
    """One line per numeric key outside its range, naming the key, the range and the value."""
    problems = []
    for key, value in numeric_values(cfg).items():
        if isinstance(value, float) and not math.isfinite(value):
            problems.append(f"'{key}' must be a finite number, got {value}")
            continue
        low, high, note = RANGES.get(key, (-GENERIC_BOUND, GENERIC_BOUND, ""))
        if value > high or (low is not None and value < low):
            span = f"in [{_show(low)}, {_show(high)}]" if low is not None else f"at most {_show(high)}"
            problems.append(f"'{key}' must be {span}{note}, got {_show(value)}")
    return problems
