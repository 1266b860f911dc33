"""``samlora demo``: the blog's experiment in miniature, offline, on any laptop.

1. Generate a colonoscopy-like target domain: site A (train/valid/test) and
   three unseen "hospitals" B, C, D (test), as ordinary image/mask folders.
2. Evaluate the vanilla reference model (pretrained on a synthetic natural
   domain, shipped in the package).
3. Fine-tune it on site A with the blog's setting (rank 4, alpha 1, LoRA on
   every linear layer of the image encoder, mask decoder trained) for each seed.
4. Evaluate vanilla and every seed on A's test split and on B, C, D, with
   identical prompts; write the table, the parameter report, the adapter size,
   loss curves and image | truth | LoRA | vanilla panels, and print the table.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from samlora.config import Config, config_from_dict
from samlora.evaluate.report import BASE, EvalReport
from samlora.lora.counts import format_report, parameter_report
from samlora.lora.plan import apply_lora
from samlora.models.loading import load_model
from samlora.models.presets import REFERENCE_PRESET, preset_folder

log = logging.getLogger(__name__)
SITES = ("site_A", "site_B", "site_C", "site_D")
IMAGE_SIZE = 256
"""Side of the generated target-domain images, pixels."""
PROMPTS = ("center_point", "box")
"""Evaluation prompts: the harder single click first (its run draws the panels)."""


@dataclass(frozen=True)
class DemoPlan:
    """Sizes of one demo run (full or quick)."""

    seeds: tuple[int, ...]
    steps: int
    n_train: int
    n_valid: int
    n_test: int


FULL = DemoPlan(seeds=(1, 2, 3), steps=480, n_train=200, n_valid=40, n_test=80)
QUICK = DemoPlan(seeds=(1,), steps=90, n_train=120, n_valid=24, n_test=40)


def demo_config(data: Path, out: Path, seed: int, steps: int, device: str = "auto") -> Config:
    """The blog's medical setting on the reference model (see configs/medical.yaml)."""
    return config_from_dict(
        {
            "model": {"name": REFERENCE_PRESET},
            "lora": {"rank": 4, "alpha": 1, "components": ["vision_encoder"], "target_modules": ["all-linear"], "train_fully": ["mask_decoder"]},
            "data": {"root": str(data), "format": "masks", "mask_type": "binary"},
            "prompts": {"modes": ["box", "points", "box+points"], "max_points": 2},
            "augment": {"hflip": 0.5, "vflip": 0.5},
            "loss": {"dice": 1.0, "focal": 20.0, "boundary": 1.0},
            "train": {
                "max_steps": steps, "batch_size": 4, "lr": 3e-3, "warmup_steps": 10, "seed": seed, "num_workers": 1,
                "eval_every": steps, "trackers": ["none"], "device": device,
            },
            "eval": {"prompt": "center_point", "batch_size": 8},
            "output": {"dir": str(out), "overwrite": True},
        }
    )  # fmt: skip


def weights_digest(folder: Path) -> str:
    """SHA-256 of a model folder's safetensors files (the base must be bit-identical after the demo)."""
    digest = hashlib.sha256()
    for path in sorted(folder.glob("*.safetensors")):
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _same_sites(data: Path, plan: DemoPlan, seed: int) -> bool:
    """Whether ``data`` holds complete sites written with this plan's counts and ``seed`` (then they are reused)."""
    info = data / "synthetic_sites.json"
    if not info.is_file():
        return False
    written = json.loads(info.read_text())
    site_a = written.get("counts", {}).get("site_A", {})
    wanted = {"train": plan.n_train, "valid": plan.n_valid, "test": plan.n_test}
    return written.get("seed") == seed and written.get("size") == IMAGE_SIZE and site_a == wanted


def run_demo(
    output: str | Path = "samlora-demo",
    quick: bool = False,
    device: str = "auto",
    seed: int = 0,
    steps: int | None = None,
) -> dict:
    """Run the whole experiment; return the summary written to ``output/results.json``.

    ``steps`` replaces the plan's training steps per seed (shorter and less accurate); after the first
    logged steps an estimate of the training time is logged (:mod:`samlora.demo.estimate`).
    """
    from samlora.evaluate.runner import run_eval
    from samlora.training.trainer import train

    from .estimate import TrainingEstimate
    from .folders import write_target_sites

    plan = QUICK if quick else FULL
    if steps is not None:
        plan = replace(plan, steps=steps)
    out = Path(output)
    started = time.perf_counter()
    reference = preset_folder(REFERENCE_PRESET)
    if reference is None or not (reference / "config.json").is_file():
        raise FileNotFoundError(f"the reference model is missing from {reference}; reinstall samlora")
    before = weights_digest(reference)
    data = out / "data"
    if not _same_sites(data, plan, seed):
        log.info("generating the synthetic colonoscopy sites in %s", data)
        write_target_sites(
            data,
            seed=seed,
            n_train=plan.n_train,
            n_valid=plan.n_valid,
            n_test=plan.n_test,
            size=IMAGE_SIZE,
            overwrite=True,
        )
    runs = []
    for s in plan.seeds:
        cfg = demo_config(data / "site_A", out / "runs" / f"seed_{s}", s, plan.steps, device)
        log.info("fine-tuning seed %d (%d steps)", s, plan.steps)
        if s == plan.seeds[0]:
            with TrainingEstimate(cfg.output.dir, plan.steps, len(plan.seeds)):
                runs.append(train(cfg).run_dir)
        else:
            runs.append(train(cfg).run_dir)
    reports = {}
    for prompt in PROMPTS:
        eval_cfg = demo_config(data / "site_A", out / "unused", plan.seeds[0], plan.steps, device)
        eval_cfg.eval.prompt = prompt
        eval_cfg.eval.panels = eval_cfg.eval.panels if prompt == PROMPTS[0] else 0
        reports[prompt] = run_eval(
            eval_cfg,
            [r / "best" for r in runs],
            [data / site for site in SITES],
            "test",
            out / f"eval_{prompt}",
            base=True,
            device=device,
        )
    summary = _summarize(reports, runs, reference, before, time.perf_counter() - started, plan)
    (out / "results.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "README.md").write_text(_markdown(summary, reports))
    return summary


def _summarize(
    reports: dict[str, EvalReport],
    runs: list[Path],
    reference: Path,
    before: str,
    seconds: float,
    plan: DemoPlan,
) -> dict:
    """What ``results.json`` holds: per prompt, vanilla and LoRA (mean ± std over seeds) Dice per site."""
    loaded = load_model(REFERENCE_PRESET)
    model, _ = apply_lora(loaded.model, loaded.spec, demo_config(Path("."), Path("."), 0, 1).lora)
    counts = parameter_report(model, loaded.spec)
    adapter_bytes = (runs[0] / "best" / "adapter_model.safetensors").stat().st_size
    dice = {}
    for prompt, report in reports.items():
        adapters = [m for m in report.models if m != BASE]
        dice[prompt] = {
            "vanilla": {ds: report.cells[BASE][ds]["dice"]["mean"] for ds in report.datasets},
            "lora": {
                ds: {
                    "mean": float(np.mean([report.cells[m][ds]["dice"]["mean"] for m in adapters])),
                    "std": _sample_std([report.cells[m][ds]["dice"]["mean"] for m in adapters]),
                    "seeds": [report.cells[m][ds]["dice"]["mean"] for m in adapters],
                }
                for ds in report.datasets
            },
        }
    return {
        "plan": plan.__dict__ | {"seeds": list(plan.seeds)},
        "dice": dice,
        "parameter_report": format_report(counts),
        "trainable_parameters": sum(c.trainable for c in counts.values()),
        "adapter_bytes": adapter_bytes,
        "base_unchanged": weights_digest(reference) == before,
        "seconds": round(seconds, 1),
        "runs": [str(r) for r in runs],
    }


def _sample_std(values: list[float]) -> float:
    """Standard deviation over seeds with Bessel's correction (0 for a single seed)."""
    return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


PROMPT_TEXT = {
    "center_point": "one click: the lesion's interior point farthest from its edge",
    "box": "the lesion's tight bounding box",
}


def summary_table(summary: dict, prompt: str) -> str:
    """Markdown table of one prompt: vanilla and LoRA (mean ± std over seeds) Dice per site."""
    cells = summary["dice"][prompt]
    sites = list(cells["vanilla"])
    n = len(summary["plan"]["seeds"])
    lines = [f"| model | {' | '.join(sites)} |", "|---|" + "---|" * len(sites)]
    lines.append("| vanilla | " + " | ".join(f"{cells['vanilla'][s]:.3f}" for s in sites) + " |")
    lora = [f"{cells['lora'][s]['mean']:.3f} ± {cells['lora'][s]['std']:.3f}" for s in sites]
    lines.append(f"| LoRA ({n} seed{'s' if n > 1 else ''}) | " + " | ".join(lora) + " |")
    return "\n".join(lines)


def _markdown(summary: dict, reports: dict[str, EvalReport]) -> str:
    lines = [
        "# samlora demo: LoRA adapts a pretrained segmenter to a shifted domain",
        "",
        f"Mean Dice per test image, vanilla reference model vs LoRA (mean ± std over seeds "
        f"{summary['plan']['seeds']}). Site A is the training site; B, C, D are unseen.",
    ]
    for prompt in summary["dice"]:
        lines += ["", f"Prompt: {PROMPT_TEXT[prompt]}.", "", summary_table(summary, prompt)]
    lines += [
        "",
        f"Trainable parameters: {summary['trainable_parameters']:,}; adapter file: "
        f"{summary['adapter_bytes'] / 1024:.0f} KiB; base weights unchanged: {summary['base_unchanged']}; "
        f"wall time {summary['seconds']:.0f} s.",
        "",
        "```",
        summary["parameter_report"],
        "```",
        "",
        "Per-model tables with confidence intervals: eval_*/report.md. Loss curves: "
        "runs/seed_*/loss_curve.png. Panels: eval_center_point/panels/ (image | truth | LoRA | vanilla).",
    ]
    return "\n".join(lines) + "\n"
