"""Everything about a run that can be checked before any weight is loaded, reported at once.

``samlora config validate`` and :func:`~samlora.training.trainer.train` run these checks first, so a
config that validates is one that starts: the data root exists and holds the training split (a
missing validation split is a note), the components and target modules exist in the model when its
config is at hand (a local folder, a preset or a hub id in the cache; the model is built on the meta
device, no weights), the trackers are installed and the output folder can be written.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from samlora.config import Config
from samlora.errors import ConfigError, SamloraError

from .state import holds_run
from .trackers import tracker_names


@dataclass
class Preflight:
    """What the checks found: ``problems`` stop a run, ``notes`` do not."""

    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def preflight(cfg: Config, existing_run: bool = True) -> Preflight:
    """Check data, model components/targets, trackers and output folder of ``cfg`` without loading weights
    (``existing_run``: also refuse an output folder that holds a run; the trainer checks that itself)."""
    found = Preflight()
    _check_data(cfg, found)
    _check_model(cfg, found)
    try:
        tracker_names(cfg.train.trackers)
    except ConfigError as err:
        found.problems.extend(err.problems)
    _check_output(cfg, found, existing_run)
    return found


def check_before_loading(cfg: Config, source: str | None = None, existing_run: bool = True) -> list[str]:
    """Raise one :class:`ConfigError` with every problem :func:`preflight` finds; return its notes."""
    found = preflight(cfg, existing_run)
    if found.problems:
        raise ConfigError(found.problems, source)
    return found.notes


def _check_data(cfg: Config, found: Preflight) -> None:
    from samlora.data.layout import find_splits, open_split
    from samlora.tasks.common import mask_options

    d = cfg.data
    if not d.root:
        found.problems.append(
            "'data.root' is not set; pass --data.root PATH (a COCO export, a COCO json file or images/ + masks/ folders)"
        )
        return
    options = mask_options(cfg)
    try:
        open_split(d.root, d.train_split, d.format, **options)  # listing only: nothing is decoded
        splits = find_splits(d.root, d.format, **options)
    except SamloraError as err:
        found.problems.append(f"'data.root' {d.root}: {err}")
        return
    try:
        from samlora.data.layout import open_split_if_present

        if open_split_if_present(d.root, d.valid_split, d.format, **options) is None:
            found.notes.append(
                f"{d.root} has no '{d.valid_split}' split (splits: {', '.join(splits)}): training runs without "
                "validation and best/ equals last/; name one with --data.valid_split"
            )
    except SamloraError as err:
        found.problems.append(f"'data.valid_split' {d.valid_split} of {d.root}: {err}")


def _check_model(cfg: Config, found: Preflight) -> None:
    """Components and target modules against the model's architecture, when its config is local."""
    import torch
    import transformers

    from samlora.lora.plan import plan_lora
    from samlora.models.loading import detect_family, resolve_source

    name = cfg.model.name
    source = resolve_source(name)
    try:
        config = transformers.AutoConfig.from_pretrained(source, local_files_only=True)
    except (OSError, ValueError):
        if Path(source).exists():
            found.problems.append(
                f"'model.name' {name} is a folder without a readable config.json; pass a folder written by "
                "`save_pretrained`, a hub id or a preset (samlora info --presets)"
            )
        else:
            found.notes.append(
                f"model {name} is not on this machine (no local folder, preset or cached hub id): its components "
                "and target modules are checked when it loads"
            )
        return
    try:
        spec = detect_family(config, cfg.model.family)
        with torch.device("meta"):  # the architecture only: no memory, no weights read
            model = getattr(transformers, spec.model_class)._from_config(config)
        plan_lora(model, spec, cfg.lora)
        if spec.task == "concept":
            from types import SimpleNamespace

            from samlora.tasks.concept.task import check_components

            check_components(cfg, SimpleNamespace(spec=spec))  # only the family is read
    except SamloraError as err:
        found.problems.append(f"model {name}: {err}")


def _check_output(cfg: Config, found: Preflight, existing_run: bool) -> None:
    out = Path(cfg.output.dir)
    if out.exists() and not out.is_dir():
        found.problems.append(f"'output.dir' {out} is a file; choose a folder with --output.dir")
        return
    if existing_run and holds_run(out) and not cfg.output.overwrite:
        found.problems.append(
            f"'output.dir' {out} already holds a run; continue it with `samlora train --resume {out}`, choose "
            "another --output.dir, or pass --output.overwrite true"
        )
    existing = out
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        where = (
            "" if existing == out else f" (its nearest existing parent {existing} is not a writable folder)"
        )
        found.problems.append(f"'output.dir' {out} cannot be written{where}; choose another --output.dir")
