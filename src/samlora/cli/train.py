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
        "--resume",
        default=None,
        help="Continue the run in this output folder from its last saved state; with --train.max_steps N or "
        "--train.epochs N, extend it (finished or not) to that length, every other setting kept.",
    )
    add_config_arguments(parser)
    return parser


@handles("train")
def run_train(args: dict[str, Any]) -> int:
    resume = args.get("resume")
    extend = None
    if resume:
        from samlora.errors import ConfigError
        from samlora.training.extend import EXTENDABLE, run_progress

        length = {k: v for k, v in (args.get("train") or {}).items() if k in EXTENDABLE}
        given = sorted(k for k in args if k not in ("resume", "train") and args[k] not in (None, {}))
        given += sorted(f"train.{k}" for k in args.get("train") or {} if k not in EXTENDABLE)
        if given:
            raise ConfigError(
                [
                    f"--resume continues {resume} with its own config.yaml; drop {given} (start a new run to change "
                    "settings; --train.max_steps N or --train.epochs N extends the run)"
                ],
                "the command line",
            )
        progress = run_progress(resume)
        if progress.finished and not length:
            print(
                f"{resume} is finished: {progress.describe()}; its adapter is {resume}/best. To train it further: "
                f"samlora train --resume {resume} --train.max_steps N (N > {progress.step}) or --train.epochs N"
                + ("" if progress.stopped_early else f" (N > {progress.epoch})")
            )
            return 0
        extend = length or None
    from samlora.training.trainer import train

    cfg = None if resume else resolve_config(args)
    result = train(cfg, resume=resume, extend=extend)
    if not result.is_main_process:
        return 0
    value = "n/a" if result.best_value is None else f"{result.best_value:.4f}"
    print(f"best {result.best_metric}: {value}\nadapter: {result.best_dir}\nrun: {result.run_dir}")
    return 0
