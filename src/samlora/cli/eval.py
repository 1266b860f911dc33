"""``samlora eval``: adapters vs the vanilla base model, on one or several data sets, one table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jsonargparse import ArgumentParser

from samlora.config import config_from_dict, merge, read_yaml
from samlora.errors import SamloraError

from .registry import add_config_arguments, command, handles, resolve_config


@command(
    "eval",
    help="Evaluate adapters (and the vanilla base with --base) on test splits; write tables and panels.",
)
def eval_parser() -> ArgumentParser:
    parser = ArgumentParser(
        description="Evaluate one or more adapters against the vanilla base model on identical prompts, on one or "
        "more data sets. Rows = models (e.g. one adapter per seed), columns = data sets, cells = mean Dice ± 95% CI."
    )
    parser.add_argument(
        "adapters",
        nargs="*",
        default=[],
        help="Adapter folders or run folders (RUN means RUN/best), or a folder holding run folders "
        "(e.g. the parent of `train --seeds`' OUTPUT_s1 OUTPUT_s2 ...: every run in it, by name).",
    )
    parser.add_argument(
        "--datasets",
        nargs="+",
        default=None,
        help="Data roots to evaluate on (default: the run's data.root).",
    )
    parser.add_argument(
        "--split",
        default=None,
        help="Split of each data set to evaluate (default: data.test_split, i.e. test); 'all' takes every "
        "image of a flat images/ + masks/ folder.",
    )
    parser.add_argument(
        "--retain",
        nargs="+",
        default=None,
        help="Data roots of the base model's home domain (what it could already do): the report compares "
        "vanilla and each adapter there and flags a drop beyond the CI. Needs --base.",
    )
    parser.add_argument(
        "--base", action="store_true", help="Also evaluate the vanilla base model with the same prompts."
    )
    parser.add_argument(
        "--output", default=None, help="Report folder (default: RUN/eval, or ./samlora-eval)."
    )
    parser.add_argument(
        "--device", default="auto", choices=["auto", "cpu", "cuda", "mps"], help="Where to run."
    )
    parser.add_argument(
        "--precision", default="no", choices=["no", "bf16", "fp16"], help="Autocast precision."
    )
    add_config_arguments(parser, sections=("model", "data", "eval"))
    return parser


def adapter_folders(paths: list[str]) -> list[Path]:
    """Adapter folders of the positional arguments: ``RUN`` -> ``RUN/best``; a folder that is no
    adapter or run but holds run folders (``train --seeds``) -> each of them, sorted by name."""
    from samlora.lora.adapters import adapter_folder

    out: list[Path] = []
    for path in paths:
        folder = Path(path)
        found = adapter_folder(folder)
        if found == folder and folder.is_dir() and not (folder / "adapter_config.json").is_file():
            runs = sorted(p for p in folder.iterdir() if adapter_folder(p) != p)
            if runs:
                out += [adapter_folder(r) for r in runs]
                continue
        out.append(found)
    return out


@handles("eval")
def run_eval_cmd(args: dict[str, Any]) -> int:
    from samlora.evaluate.runner import run_eval
    from samlora.io.disk import check_writable

    adapters = adapter_folders(args.get("adapters") or [])
    run_dirs = [a.parent for a in adapters if (a.parent / "config.yaml").is_file()]
    if args.get("config") is None and run_dirs:
        # start from the first run's resolved config, then apply the flags
        base = read_yaml(run_dirs[0] / "config.yaml")
        overrides = {k: v for k, v in args.items() if k in ("model", "data", "eval") and isinstance(v, dict)}
        cfg = config_from_dict(merge(base, overrides), source=str(run_dirs[0] / "config.yaml"))
    else:
        cfg = resolve_config(args, sections=("model", "data", "eval"))
    datasets = args.get("datasets") or ([cfg.data.root] if cfg.data.root else [])
    if not datasets:
        raise SamloraError(
            "no data to evaluate on: pass --datasets DIR [DIR ...] (or a run folder whose config names data.root)"
        )
    output = args.get("output") or (run_dirs[0] / "eval" if run_dirs else Path("samlora-eval"))
    check_writable(output, "--output")  # before the model loads
    report = run_eval(
        cfg, adapters, datasets, args.get("split") or cfg.data.test_split, output, base=bool(args.get("base")),
        model_name=(args.get("model") or {}).get("name"),
        device=args["device"], precision=args["precision"], retain=args.get("retain"),
    )  # fmt: skip
    if isinstance(report, dict):  # concept models: mAP / cgF1
        print((Path(output) / "report.md").read_text())
    else:
        print("\n".join(report.header()) + "\n\n" + report.table("dice"))
        if report.clicks:
            print("\n" + report.clicks_table())
        if report.retained:
            print("\n" + report.retention_table())
    print(f"\nreports in {output} (open {Path(output) / 'report.html'})")
    return 0
