"""``samlora info``: what a model is and where LoRA can go."""

from __future__ import annotations

from typing import Any

from jsonargparse import ArgumentParser

from .registry import add_config_arguments, command, handles, resolve_config


@command("info", help="Show a model's family, components, parameters and LoRA targets.")
def info_parser() -> ArgumentParser:
    parser = ArgumentParser(
        description="Show a model's family, components, parameter counts and the layers LoRA can target."
    )
    parser.add_argument(  # not "model": that name is the config section of --model.* flags
        "model_id",
        metavar="MODEL",
        nargs="?",
        default=None,
        help="Hub id, local folder or preset (default: model.name).",
    )
    parser.add_argument(
        "--presets",
        action="store_true",
        help="List the model presets that need no download and the config presets, one line each.",
    )
    parser.add_argument(
        "--report", action="store_true", help="Also print the LoRA plan and trainable-parameter report."
    )
    add_config_arguments(parser, sections=("model", "lora"))
    return parser


@handles("info")
def run_info(args: dict[str, Any]) -> int:
    if args.get("presets"):
        print(presets_text())
        return 0
    from samlora.lora.describe import describe
    from samlora.models.loading import load_model

    cfg = resolve_config(args, sections=("model", "lora"))
    loaded = load_model(args.get("model_id") or cfg.model.name, family=cfg.model.family)
    print(describe(loaded, cfg.lora if args.get("report") else None))
    return 0


def presets_text() -> str:
    """Every model preset (``model.name``) and config preset (``--config NAME``) with one line saying what it is;
    reads no weights and imports no torch."""
    from samlora.config import config_presets
    from samlora.models.presets import PRESET_DESCRIPTIONS, preset_names

    names = preset_names()
    width = max(len(n) for n in [*names, *config_presets()]) + 2
    lines = ["model presets (model.name NAME; no download):"]
    lines += [f"  {name:<{width}}{PRESET_DESCRIPTIONS[name]}" for name in names]
    lines += ["", "config presets (--config NAME):"]
    lines += [f"  {name:<{width}}{preset_summary(name)}" for name in config_presets()]
    return "\n".join(lines)


def preset_summary(name: str) -> str:
    """The first line of a config preset's header comment (``# NAME: what it is.``), without the name."""
    from samlora.config.io import PRESET_DIR

    first = (PRESET_DIR / f"{name}.yaml").read_text().splitlines()[:1]
    text = first[0].lstrip("# ").strip() if first and first[0].startswith("#") else ""
    return text.removeprefix(f"{name}:").strip()
