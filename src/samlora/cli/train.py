"""``samlora train``: fine-tune with LoRA from a YAML config and flags, or resume a run."""

from __future__ import annotations

from typing import Any

from jsonargparse import ArgumentParser

from .registry import add_config_arguments, command, handles, resolve_config


@command(
    "train", help="Fine-tune a model with LoRA (--config FILE, any --section.key override, --resume RUN)."
)
def train_parser() -> ArgumentParser:
    parser = ArgumentParser(
        description="Fine-tune a Segment Anything model with LoRA. Every config key can be set in the YAML file "
        "or as --section.key value. Works unchanged under `accelerate launch` and `torchrun`."
    )
    parser.add_argument(
        "--resume", default=None, help="Continue the run in this output folder from its last saved state."
    )
    add_config_arguments(parser)
    return parser


@handles("train")
def run_train(args: dict[str, Any]) -> int:
    from samlora.training.trainer import train

    resume = args.get("resume")
    if resume:
        given = sorted(k for k in args if k not in ("resume",) and args[k] not in (None, {}))
        if given:
            from samlora.errors import ConfigError

            raise ConfigError(
                [
                    f"--resume continues {resume} with its own config.yaml; drop {given} (start a new run to change settings)"
                ],
                "the command line",
            )
    cfg = None if resume else resolve_config(args)
    result = train(cfg, resume=resume)
    if not result.is_main_process:
        return 0
    value = "n/a" if result.best_value is None else f"{result.best_value:.4f}"
    print(f"best {result.best_metric}: {value}\nadapter: {result.best_dir}\nrun: {result.run_dir}")
    return 0
