"""Reading a configuration: YAML + overrides -> a validated :class:`~samlora.config.schema.Config`.

Every problem (unknown key with the closest valid one, wrong type, bad value,
inconsistent keys) is collected and reported at once in one ``ConfigError``.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from pathlib import Path
from typing import Any, Literal

import yaml

from samlora.errors import ConfigError
from samlora.io.atomic import write_text
from samlora.io.readers import MiB, parse_yaml, read_text

from .limits import range_problems
from .sam3_lora import from_sam3_lora, is_sam3_lora, known_meaning
from .schema import Config


def config_keys(cls: type = Config, prefix: str = "") -> list[str]:
    """Every dotted key of the tree, e.g. ``lora.rank``."""
    keys = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            keys.extend(config_keys(tp, f"{prefix}{f.name}."))
        else:
            keys.append(prefix + f.name)
    return keys


def to_dict(cfg: Config) -> dict[str, Any]:
    """Plain nested dict of a config (what ``config.yaml`` holds)."""
    return dataclasses.asdict(cfg)


def save_config(cfg: Config, path: str | Path) -> None:
    """Write the fully resolved config as YAML (atomically: the old file or the new one, never half)."""
    write_text(Path(path), yaml.safe_dump(to_dict(cfg), sort_keys=False))


PRESET_DIR = Path(__file__).resolve().parents[1] / "configs"
"""Config presets shipped with the package (``configs/`` in the repository links here)."""


def config_presets() -> list[str]:
    """Names of the shipped config presets (``--config NAME`` reads ``PRESET_DIR/NAME.yaml``)."""
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping, with a clear error for a missing file or bad YAML.

    A bare preset name (``medical``, or ``medical.yaml``) that is not a file here reads the shipped preset.
    """
    path = Path(path)
    preset = PRESET_DIR / f"{path.name.removesuffix('.yaml')}.yaml"
    if not path.is_file() and path.parent == Path(".") and preset.is_file():
        path = preset
    if not path.is_file():
        raise ConfigError(
            [
                f"config file {path} does not exist; pass the path of a YAML file or a preset name "
                f"({', '.join(config_presets())})"
            ],
            str(path),
        )

    def error(message: str) -> ConfigError:
        return ConfigError([message], str(path))

    # UTF-8, at most 16 MiB, nesting and alias expansion limited: an alias bomb is refused at once
    data = parse_yaml(read_text(path, "config file", error, max_bytes=16 * MiB), str(path), error) or {}
    if not isinstance(data, dict):
        raise ConfigError(["the file must hold a mapping of sections (model:, lora:, data:, ...)"], str(path))
    return data


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge ``override`` into a copy of ``base`` (mappings merge, other values replace)."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> Config:
    """Read a YAML file (optional), apply nested ``overrides`` and validate everything."""
    data = read_yaml(path) if path is not None else {}
    if is_sam3_lora(data):  # the SAM3-LoRA tool's format: read it as the samlora config it means
        data = from_sam3_lora(data)[0]
    if overrides:
        data = merge(data, overrides)
    return config_from_dict(data, source=str(path) if path else None)


def config_from_dict(data: dict[str, Any], source: str | None = None) -> Config:
    """Build and validate a :class:`Config`; raise one :class:`ConfigError` listing every problem."""
    problems: list[str] = []
    cfg = _build(Config, data, "", problems)
    # Range checks run on every key that passed its type check (bad ones kept their defaults).
    flagged = [p.split("'")[1] for p in problems if "'" in p]
    values = validate_values(cfg)
    values += [r for r in range_problems(cfg) if not any(f"'{_key(r)}'" in v for v in values)]
    problems.extend(v for v in values if not any(f"'{key}'" in v for key in flagged))
    if problems:
        raise ConfigError(problems, source)
    return cfg


def _key(problem: str) -> str:
    """The quoted key a problem line names first (``'train.lr' must ...`` -> ``train.lr``)."""
    return problem.split("'")[1] if problem.count("'") >= 2 else ""


# Names users bring from other tools, mapped to samlora's leaf names.
_SYNONYMS = {
    "learning_rate": "lr",
    "num_epochs": "epochs",
    "r": "rank",
    "lora_r": "rank",
    "lora_rank": "rank",
    "lora_alpha": "alpha",
    "lora_dropout": "dropout",
    "gradient_accumulation_steps": "grad_accum",
    "mixed_precision": "precision",
    "max_grad_norm": "grad_clip",
    "eval_steps": "eval_every",
    "output_dir": "dir",
    "data_dir": "root",
    "train_batch_size": "batch_size",
}


def _suggest(key: str, candidates: list[str]) -> str:
    """``; did you mean 'x.y'?`` for the closest valid key (same section first), or ``""``."""
    known = known_meaning(key)
    if known and (known.startswith("lora.components:") or known in candidates):
        return f"; did you mean '{known}'?"
    section, _, leaf = key.rpartition(".")
    same = {c.rpartition(".")[2]: c for c in candidates if c.rpartition(".")[0] == section}
    close: list[str] = []
    if leaf in _SYNONYMS and _SYNONYMS[leaf] in same:
        close = [same[_SYNONYMS[leaf]]]
    if not close:
        close = [same[m] for m in difflib.get_close_matches(leaf, list(same), n=1, cutoff=0.5)]
    if not close:
        close = difflib.get_close_matches(key, candidates, n=1, cutoff=0.5)
    if not close:
        leaves = {c.rsplit(".", 1)[-1]: c for c in candidates}
        target = _SYNONYMS.get(leaf, leaf)
        close = [leaves[m] for m in difflib.get_close_matches(target, list(leaves), n=1, cutoff=0.6)]
    return f"; did you mean '{close[0]}'?" if close else ""


def _build(cls: type, data: Any, prefix: str, problems: list[str]) -> Any:
    section = prefix.rstrip(".") or "the top level"
    if data is None:
        data = {}
    if not isinstance(data, dict):
        problems.append(f"'{section}' must be a mapping of keys, got {type(data).__name__} {data!r}")
        return cls()
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    candidates = config_keys() if prefix else list(names)
    for key in data:
        if key not in names:
            problems.append(f"unknown key '{prefix}{key}'{_suggest(prefix + str(key), candidates)}")
    kwargs = {}
    for name in names:
        if name not in data:
            continue
        tp, value, dotted = hints[name], data[name], prefix + name
        if dataclasses.is_dataclass(tp):
            kwargs[name] = _build(tp, value, dotted + ".", problems)
        else:
            ok, converted, expected = _check_type(value, tp)
            if ok:
                kwargs[name] = converted
            else:
                problems.append(f"'{dotted}' must be {expected}, got {value!r}")
    return cls(**kwargs)


def _check_type(value: Any, tp: Any) -> tuple[bool, Any, str]:
    """Check ``value`` against a type hint; return (ok, value converted, description of the type)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Literal:
        return value in args, value, "one of " + ", ".join(str(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        for arg in args:
            if arg is type(None) and value is None:
                return True, None, "null"
            ok, converted, _ = _check_type(value, arg)
            if ok and arg is not type(None):
                return True, converted, ""
        return False, value, " or ".join(_check_type(None, a)[2] or "null" for a in args)
    if tp is bool:
        return isinstance(value, bool), value, "true or false"
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool), value, "an integer"
    if tp is float:
        if isinstance(value, str):  # YAML 1.1 reads 1e-4 (no dot) as a string
            try:
                return True, float(value.strip()), "a number"
            except ValueError:
                return False, value, "a number (e.g. 0.0001 or 1.0e-4)"
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return ok, float(value) if ok else value, "a number"
    if tp is str:
        ok = isinstance(value, (str, int, float)) and not isinstance(value, bool)
        return ok, str(value) if ok else value, "a string"
    if origin is list:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, (list, tuple)):
            return False, value, "a list"
        out = []
        for item in value:
            ok, converted, expected = _check_type(item, args[0])
            if not ok:
                return False, value, f"a list of {expected}s"
            out.append(converted)
        return True, out, "a list"
    if origin is dict:
        if not isinstance(value, dict):
            return False, value, "a mapping"
        out = {}
        for k, v in value.items():
            ok_k, ck, ek = _check_type(
                k if args[0] is not int or not isinstance(k, str) else _int(k), args[0]
            )
            ok_v, cv, ev = _check_type(v, args[1])
            if not (ok_k and ok_v):
                return False, value, f"a mapping of {ek} to {ev}"
            out[ck] = cv
        return True, out, "a mapping"
    return True, value, str(tp)


def _int(text: str) -> Any:
    try:
        return int(text)
    except ValueError:
        return text


def validate_values(cfg: Config) -> list[str]:
    """Range and consistency checks; every problem names the key and the fix."""
    p: list[str] = []

    def need(cond: bool, msg: str) -> None:
        if not cond:
            p.append(msg)

    lo, tr, ev, au, pr = cfg.lora, cfg.train, cfg.eval, cfg.augment, cfg.prompts
    need(lo.rank >= 1, f"'lora.rank' must be at least 1, got {lo.rank}")
    need(lo.alpha > 0, f"'lora.alpha' must be positive, got {lo.alpha}")
    need(0 <= lo.dropout < 1, f"'lora.dropout' must be in [0, 1), got {lo.dropout}")
    need(
        bool(lo.components or lo.train_fully),
        "nothing to train: set 'lora.components' and/or 'lora.train_fully'",
    )
    need(
        bool(lo.target_modules) or not lo.components,
        "'lora.target_modules' is empty; use e.g. [q_proj, v_proj] or [all-linear]",
    )
    both = sorted(set(lo.components) & set(lo.train_fully))
    need(
        not both,
        f"{both} are in both 'lora.components' and 'lora.train_fully'; a component is either LoRA-adapted or fully trained, remove it from one",
    )
    need(tr.epochs >= 1 or tr.max_steps >= 1, "'train.epochs' or 'train.max_steps' must be at least 1")
    need(tr.max_steps >= 0, f"'train.max_steps' must be 0 (use epochs) or positive, got {tr.max_steps}")
    need(tr.batch_size >= 1, f"'train.batch_size' must be at least 1, got {tr.batch_size}")
    need(tr.lr > 0, f"'train.lr' must be positive, got {tr.lr}")
    need(tr.weight_decay >= 0, f"'train.weight_decay' must be >= 0, got {tr.weight_decay}")
    need(tr.grad_accum >= 1, f"'train.grad_accum' must be at least 1, got {tr.grad_accum}")
    need(tr.grad_clip >= 0, f"'train.grad_clip' must be >= 0 (0 disables), got {tr.grad_clip}")
    need(tr.num_workers >= 0, f"'train.num_workers' must be >= 0, got {tr.num_workers}")
    need(tr.warmup_steps >= 0, f"'train.warmup_steps' must be >= 0, got {tr.warmup_steps}")
    need(tr.eval_every >= 0, f"'train.eval_every' must be >= 0 (0 = every epoch), got {tr.eval_every}")
    need(tr.patience >= 0, f"'train.patience' must be >= 0 (0 = off), got {tr.patience}")
    need(tr.log_every >= 1, f"'train.log_every' must be at least 1, got {tr.log_every}")
    bad_trackers = [t for t in tr.trackers if t not in ("auto", "none", "tensorboard", "wandb", "mlflow")]
    need(
        not bad_trackers,
        f"'train.trackers' has unknown {bad_trackers}; use auto, none, tensorboard, wandb or mlflow",
    )
    need(
        cfg.data.objects_per_image >= 1,
        f"'data.objects_per_image' must be at least 1, got {cfg.data.objects_per_image}",
    )
    need(
        0 <= cfg.data.val_fraction < 1, f"'data.val_fraction' must be in [0, 1), got {cfg.data.val_fraction}"
    )
    need(
        0 <= cfg.data.test_fraction < 1,
        f"'data.test_fraction' must be in [0, 1), got {cfg.data.test_fraction}",
    )
    need(
        cfg.data.min_object_area >= 0, f"'data.min_object_area' must be >= 0, got {cfg.data.min_object_area}"
    )
    bad_modes = [m for m in pr.modes if m not in ("box", "points", "box+points")]
    need(
        bool(pr.modes) and not bad_modes,
        f"'prompts.modes' must list box, points and/or box+points, got {pr.modes}",
    )
    need(0 <= pr.box_jitter <= 1, f"'prompts.box_jitter' must be in [0, 1], got {pr.box_jitter}")
    need(pr.box_jitter_max_px >= 0, f"'prompts.box_jitter_max_px' must be >= 0, got {pr.box_jitter_max_px}")
    need(pr.max_points >= 1, f"'prompts.max_points' must be at least 1, got {pr.max_points}")
    need(pr.negative_points >= 0, f"'prompts.negative_points' must be >= 0, got {pr.negative_points}")
    need(pr.correction_clicks >= 0, f"'prompts.correction_clicks' must be >= 0, got {pr.correction_clicks}")
    need(
        pr.negatives_per_image >= 0,
        f"'prompts.negatives_per_image' must be >= 0, got {pr.negatives_per_image}",
    )
    for key in ("hflip", "vflip", "rot90", "crop"):
        val = getattr(au, key)
        need(0 <= val <= 1, f"'augment.{key}' is a probability in [0, 1], got {val}")
    need(
        0 < au.scale_min <= au.scale_max,
        f"'augment.scale_min' must be > 0 and <= 'augment.scale_max', got {au.scale_min} and {au.scale_max}",
    )
    for key in ("brightness", "contrast", "saturation", "hue"):
        need(getattr(au, key) >= 0, f"'augment.{key}' must be >= 0, got {getattr(au, key)}")
    for key in (
        "dice",
        "focal",
        "boundary",
        "iou",
        "boundary_weight",
        "set_class",
        "set_presence",
        "set_bbox",
        "set_giou",
        "set_mask",
        "set_dice",
        "match_class",
        "match_bbox",
        "match_giou",
    ):
        value = getattr(cfg.loss, key)
        need(value is None or value >= 0, f"'loss.{key}' must be >= 0, got {value}")
    need(
        cfg.loss.boundary_width >= 1,
        f"'loss.boundary_width' must be at least 1, got {cfg.loss.boundary_width}",
    )
    need(ev.num_points >= 1, f"'eval.num_points' must be at least 1, got {ev.num_points}")
    need(
        1 <= ev.clicks <= 20,
        f"'eval.clicks' must be in [1, 20] (the interactive protocol's 20-click budget), got {ev.clicks}",
    )
    need(ev.batch_size >= 1, f"'eval.batch_size' must be at least 1, got {ev.batch_size}")
    need(0 <= ev.score_threshold <= 1, f"'eval.score_threshold' must be in [0, 1], got {ev.score_threshold}")
    need(0 < ev.nms_iou <= 1, f"'eval.nms_iou' must be in (0, 1], got {ev.nms_iou}")
    need(ev.top_k >= 1, f"'eval.top_k' must be at least 1, got {ev.top_k}")
    need(ev.panels >= 0, f"'eval.panels' must be >= 0, got {ev.panels}")
    return p
