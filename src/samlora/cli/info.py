"""``samlora info``: what a model is and where LoRA can go."""

from __future__ import annotations

from typing import Any

from jsonargparse import ArgumentParser

from samlora.lora.describe import describe
from samlora.models.loading import load_model
from samlora.models.presets import preset_names

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
        "--presets", action="store_true", help="List the model presets that need no download."
    )
    parser.add_argument(
        "--report", action="store_true", help="Also print the LoRA plan and trainable-parameter report."
    )
    add_config_arguments(parser, sections=("model", "lora"))
    return parser


@handles("info")
def run_info(args: dict[str, Any]) -> int:
    if args.get("presets"):
        print("\n".join(preset_names()))
        return 0
    cfg = resolve_config(args, sections=("model", "lora"))
    loaded = load_model(args.get("model_id") or cfg.model.name, family=cfg.model.family)
    print(describe(loaded, cfg.lora if args.get("report") else None))
    return 0
