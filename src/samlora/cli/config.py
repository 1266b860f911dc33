"""``samlora config``: validate a config file or show the fully resolved one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from jsonargparse import ArgumentParser

from samlora.config import to_dict

from .registry import add_config_arguments, command, handles, migrated_text, resolve_config


@command("config", help="Validate or show configurations.")
def config_parser() -> ArgumentParser:
    return ArgumentParser(description="Validate a config file, or print the fully resolved configuration.")


@command("config", "validate", help="Check a config file; report every problem at once.")
def validate_parser() -> ArgumentParser:
    parser = ArgumentParser(
        description="Check a YAML config (and overrides) as `samlora train` would before loading any weights: every "
        "key and value, the data root and its training split, the components and target modules against the "
        "model's architecture (when the model is a local folder, a preset or cached), the trackers and the output "
        "folder. Every problem at once; exit 0 when valid."
    )
    add_config_arguments(parser)
    return parser


@handles("config", "validate")
def run_validate(args: dict[str, Any]) -> int:
    from samlora.training.preflight import check_before_loading

    cfg = resolve_config(args)
    source = args.get("config") or "the command line"
    for note in check_before_loading(cfg, source=f"{source} (checked against its data, model and output)"):
        print(f"note: {note}")
    print(
        f"{args.get('config') or 'defaults'}: valid (data, model components and targets, output folder checked)"
    )
    return 0


@command("config", "show", help="Print the resolved configuration (defaults + file + flags).")
def show_parser() -> ArgumentParser:
    parser = ArgumentParser(description="Print the resolved configuration as YAML.")
    add_config_arguments(parser)
    return parser


@handles("config", "show")
def run_show(args: dict[str, Any]) -> int:
    cfg = resolve_config(args, announce="stderr")  # stdout stays the resolved YAML alone
    print(yaml.safe_dump(to_dict(cfg), sort_keys=False), end="")
    return 0


@command("config", "migrate", help="Write the samlora YAML of a SAM3-LoRA tool config.")
def migrate_parser() -> ArgumentParser:
    parser = ArgumentParser(
        description="Read a config of the SAM3-LoRA tool (lora.apply_to_*, training.*, output.output_dir) and "
        "write the samlora config it means (see README, Coming from SAM3-LoRA). The result is validated first; "
        "nothing is written when it has problems."
    )
    parser.add_argument("old", metavar="OLD.yaml", help="The SAM3-LoRA config file.")
    parser.add_argument(
        "--output",
        default=None,
        help="Where to write the samlora YAML (default: OLD.samlora.yaml beside OLD).",
    )
    parser.add_argument("--overwrite", action="store_true", help="Replace an existing --output file.")
    return parser


@handles("config", "migrate")
def run_migrate(args: dict[str, Any]) -> int:
    from samlora.config import ConfigError, config_from_dict, read_yaml
    from samlora.config.sam3_lora import TOOL, from_sam3_lora, is_sam3_lora

    old = Path(args["old"])
    data = read_yaml(old)
    if not is_sam3_lora(data):
        raise ConfigError(
            [f"not a {TOOL} config (no training: section, lora.apply_to_* flags or output.output_dir); "
             "it is read as a samlora config already: `samlora config validate --config` checks it"],
            str(old),
        )  # fmt: skip
    config_from_dict(from_sam3_lora(data)[0], source=f"{old} (read as a samlora config)")
    target = Path(args["output"]) if args.get("output") else old.with_name(f"{old.stem}.samlora.yaml")
    if target.exists() and not args.get("overwrite"):
        raise ConfigError(
            [f"{target} exists; pass --overwrite to replace it, or another --output"], str(target)
        )
    text = migrated_text(str(old), data, written=True)
    target.write_text(text)
    print(text, end="")
    print(f"written to {target}; train with: samlora train --config {target}")
    return 0
