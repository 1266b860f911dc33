"""``samlora train``: fine-tune with LoRA from a YAML config and flags, or resume a run."""

from __future__ import annotations

from pathlib import Path
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
    parser.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=None,
        help="Train one run per seed (train.seed), into OUTPUT_s1, OUTPUT_s2, ... (OUTPUT: output.dir), "
        "one after the other; then print the `samlora eval` command that compares them.",
    )
    add_config_arguments(parser)
    return parser


@handles("train")
def run_train(args: dict[str, Any]) -> int:
    resume = args.get("resume")
    if args.get("seeds"):
        return _train_seeds(args)
    extend = None
    if resume:
        from samlora.errors import ConfigError
        from samlora.training.extend import EXTENDABLE, run_progress

        length = {k: v for k, v in (args.get("train") or {}).items() if k in EXTENDABLE}
        given = sorted(k for k in args if k not in ("resume", "seeds", "train") and args[k] not in (None, {}))
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


def seed_dirs(output: str, seeds: list[int]) -> list[str]:
    """``OUTPUT_s1``, ``OUTPUT_s2``, ...: one run folder per seed."""
    return [f"{output.rstrip('/')}_s{s}" for s in seeds]


def _train_seeds(args: dict[str, Any]) -> int:
    """``--seeds``: the same config once per seed; then the comparison command."""
    from samlora.errors import ConfigError
    from samlora.training.trainer import train

    seeds = list(args["seeds"])
    if args.get("resume"):
        raise ConfigError(
            ["--seeds starts new runs; resume each run with --resume OUTPUT_sN"], "the command line"
        )
    if len(set(seeds)) != len(seeds):
        raise ConfigError([f"--seeds lists a seed twice: {seeds}"], "the command line")
    output = resolve_config(args).output.dir
    runs = []
    for seed, folder in zip(seeds, seed_dirs(output, seeds)):
        own = dict(args)
        own["train"] = {**(args.get("train") or {}), "seed": seed}
        own["output"] = {**(args.get("output") or {}), "dir": folder}
        result = train(resolve_config(own))
        if not result.is_main_process:
            continue
        value = "n/a" if result.best_value is None else f"{result.best_value:.4f}"
        print(f"seed {seed}: best {result.best_metric} {value}, adapter {result.best_dir}")
        runs.append(str(result.run_dir))
    if runs:
        parent = Path(runs[0]).parent
        print("\ncompare the seeds with the vanilla base model:")
        print(f"  samlora eval {' '.join(runs)} --base")
        alone = all(Path(r).parent == parent for r in runs) and sorted(
            str(p) for p in parent.iterdir() if (p / "best").is_dir()
        ) == sorted(runs)
        if alone:
            print(f"  (or: samlora eval {parent} --base, every run in {parent})")
    return 0
