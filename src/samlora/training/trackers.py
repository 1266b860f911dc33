"""Experiment trackers of ``train.trackers``: which accelerate trackers to start, and the config they record."""

from __future__ import annotations

import importlib.util
from typing import Any

from samlora.config import Config, to_dict
from samlora.errors import ConfigError

# the package each tracker of train.trackers needs (pip name, import name); config validation
# allows only these, auto and none
TRACKER_PACKAGES = {
    "tensorboard": ("tensorboard", "tensorboard"),
    "wandb": ("wandb", "wandb"),
    "mlflow": ("mlflow", "mlflow"),
}


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def tracker_names(names: list[str]) -> list[str]:
    """accelerate tracker names for ``train.trackers``; a named tracker must be installed."""
    if "none" in names:
        return []
    named = [n for n in names if n != "auto"]
    problems = []
    for name in named:
        pip_name, module = TRACKER_PACKAGES.get(name, (name, name))
        if not _installed(module):
            problems.append(
                f"train.trackers names '{name}' but it is not installed; `pip install {pip_name}`, "
                "or drop it from train.trackers"
            )
    if problems:
        raise ConfigError(problems)
    if "auto" in names and _installed("tensorboard"):
        return sorted({"tensorboard", *named})
    return named


def flat_config(cfg: Config) -> dict[str, Any]:
    """The resolved config as ``section.key`` -> scalar, the form trackers record hyper-parameters in."""
    out: dict[str, Any] = {}
    for section, values in to_dict(cfg).items():
        for key, value in values.items():
            out[f"{section}.{key}"] = value if isinstance(value, (int, float, str, bool)) else str(value)
    return out
