"""``samlora demo``: the offline end-to-end experiment (vanilla vs LoRA on a shifted domain, unseen sites)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jsonargparse import ArgumentParser

from .registry import command, handles


@command("demo", help="Run the offline demo: vanilla vs LoRA on synthetic colonoscopy sites (no download).")
def demo_parser() -> ArgumentParser:
    parser = ArgumentParser(
        description="Generate a colonoscopy-like domain with four sites, fine-tune the shipped reference model with "
        "LoRA on site A (three seeds), evaluate vanilla vs LoRA on site A and the unseen sites B, C, D, write the "
        "table, loss curves and panels, and print the table. Runs offline."
    )
    parser.add_argument("--output", default="samlora-demo", help="Folder for the data, runs and reports.")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="One seed, fewer images and steps (see README, Demo results, for timings).",
    )
    parser.add_argument(
        "--steps",
        type=int,
        default=None,
        help="Training steps per seed (default 480, 90 with --quick): fewer is faster and less accurate.",
    )
    parser.add_argument(
        "--device", default="auto", choices=["auto", "cpu", "cuda", "mps"], help="Where to run."
    )
    return parser


@handles("demo")
def run_demo_cmd(args: dict[str, Any]) -> int:
    from samlora.demo.run import run_demo

    steps = args.get("steps")
    if steps is not None and steps < 1:
        from samlora.errors import SamloraError

        raise SamloraError(f"--steps must be at least 1, got {steps}")
    summary = run_demo(args["output"], quick=bool(args.get("quick")), device=args["device"], steps=steps)
    print((Path(args["output"]) / "README.md").read_text())
    print(f"base model weights unchanged: {summary['base_unchanged']}; results in {args['output']}")
    return 0
