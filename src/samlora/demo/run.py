"""``samlora demo``: the blog's experiment in miniature, offline, on any laptop.

1. Generate a colonoscopy-like target domain: site A (train/valid/test) and
   three unseen "hospitals" B, C, D (test), as ordinary image/mask folders.
2. Evaluate the vanilla reference model (pretrained on a synthetic natural
   domain, shipped in the package).
3. Fine-tune it on site A with the blog's setting (rank 4, alpha 1, LoRA on
   every linear layer of the image encoder, mask decoder trained) for each seed.
4. Evaluate vanilla and every seed on A's test split, on B, C, D and on held-out
   images of the reference model's own source domain (retention), with identical
   prompts: interactive clicks (Dice after 1/3/5 clicks, NoC@85) and the tight
   box; write the tables, paired statistics, report.html with plots and panels,
   the parameter report, the adapter size and loss curves; print the tables.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path

from samlora.config import Config, config_from_dict
from samlora.evaluate.report import BASE, EvalReport
from samlora.lora.counts import format_report, parameter_report
from samlora.lora.plan import apply_lora
from samlora.models.loading import load_model
from samlora.models.presets import REFERENCE_PRESET, preset_folder

from .summary import SOURCE, markdown, summarize_reports

log = logging.getLogger(__name__)
SITES = ("site_A", "site_B", "site_C", "site_D")
IMAGE_SIZE = 256
"""Side of the generated target-domain images, pixels."""
PROMPTS = ("clicks", "box")
"""Evaluation prompts: interactive clicks (click 1 is the centre point) and the tight box."""


@dataclass(frozen=True)
class DemoPlan:
    """Sizes of one demo run (full or quick)."""

    seeds: tuple[int, ...]
    steps: int
    n_train: int
    n_valid: int
    n_test: int
    n_source: int = 40
    """Held-out source-domain images (retention)."""
    clicks: int = 20
    """Click budget of the interactive evaluation (NoC@85 is capped at it)."""


FULL = DemoPlan(seeds=(1, 2, 3), steps=480, n_train=200, n_valid=40, n_test=80, n_source=40, clicks=20)
QUICK = DemoPlan(seeds=(1,), steps=90, n_train=120, n_valid=24, n_test=40, n_source=12, clicks=5)


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
    from .folders import write_source_test, write_target_sites

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
    source = data / SOURCE
    annotations = source / "test" / "_annotations.coco.json"
    if not annotations.is_file() or len(json.loads(annotations.read_text())["images"]) != plan.n_source:
        log.info("writing %d held-out source-domain images to %s", plan.n_source, source)
        write_source_test(source, plan.n_source)
    reports = {}
    for prompt in PROMPTS:
        eval_cfg = demo_config(data / "site_A", out / "unused", plan.seeds[0], plan.steps, device)
        eval_cfg.data.format = "auto"  # the sites are mask folders, the source domain COCO
        eval_cfg.eval.prompt, eval_cfg.eval.clicks = prompt, plan.clicks
        eval_cfg.eval.feed_mask = (
            False  # the reference model never saw a mask prompt: its mask input is untrained
        )
        reports[prompt] = run_eval(
            eval_cfg, [r / "best" for r in runs], [data / site for site in SITES], "test", out / f"eval_{prompt}",
            base=True, device=device, retain=[source],
        )  # fmt: skip
    exact = _vanilla_is_the_base(reports["box"], source, out / "eval_base_only", device, plan)
    summary = _summarize(reports, runs, reference, before, time.perf_counter() - started, plan, exact)
    (out / "results.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "README.md").write_text(markdown(summary))
    return summary


def _vanilla_is_the_base(report: EvalReport, source: Path, out: Path, device: str, plan: DemoPlan) -> bool:
    """Evaluate the bare reference model (no adapter loaded) on the source domain: its per-object
    figures must equal the vanilla row, which is the adapters' model with the adapters switched off."""
    from samlora.evaluate.runner import run_eval

    cfg = demo_config(source, out, plan.seeds[0], plan.steps, device)
    cfg.data.format, cfg.eval.prompt, cfg.eval.panels = "auto", report.settings["prompt"], 0
    bare = run_eval(cfg, [], [source], "test", out, base=True, model_name=REFERENCE_PRESET, device=device)
    vanilla = [
        (r.image, r.object, r.dice, r.iou) for r in report.results if r.model == BASE and r.dataset == SOURCE
    ]
    return vanilla == [(r.image, r.object, r.dice, r.iou) for r in bare.results]


def _summarize(
    reports: dict[str, EvalReport],
    runs: list[Path],
    reference: Path,
    before: str,
    seconds: float,
    plan: DemoPlan,
    exact: bool,
) -> dict:
    """What ``results.json`` holds: the evaluation figures (:mod:`.summary`), parameters and sizes."""
    loaded = load_model(REFERENCE_PRESET)
    model, _ = apply_lora(loaded.model, loaded.spec, demo_config(Path("."), Path("."), 0, 1).lora)
    counts = parameter_report(model, loaded.spec)
    adapter_bytes = (runs[0] / "best" / "adapter_model.safetensors").stat().st_size
    return {
        "plan": plan.__dict__ | {"seeds": list(plan.seeds)},
        **summarize_reports(reports, list(SITES), exact),
        "parameter_report": format_report(counts),
        "trainable_parameters": sum(c.trainable for c in counts.values()),
        "adapter_bytes": adapter_bytes,
        "base_unchanged": weights_digest(reference) == before,
        "seconds": round(seconds, 1),
        "runs": [str(r) for r in runs],
    }
