"""Pretrain the reference model from scratch on the synthetic "natural" source domain.

Usage (what made the shipped checkpoint; see its ``MODEL_CARD.md``)::

    python -m samlora.demo.pretrain --out src/samlora/assets/reference --work runs/reference-pretrain

Steps, all deterministic for ``--seed``:

1. write the source domain as instance-mask folders ``WORK/data/{train,valid,test}``
   (:func:`samlora.demo.domains.source_image`, one seed per image);
2. build the randomly initialised :func:`samlora.demo.reference.reference_config` model
   (``WORK/init``);
3. train every component fully with samlora's Trainer (no LoRA) with box, point and
   box+point prompts (``WORK/run``; the resolved ``config.yaml`` is there);
4. evaluate the best checkpoint (by validation Dice) on the held-out ``test`` split with
   ``samlora eval``'s code path, with box and with centre-point prompts;
5. copy the model folder to ``--out`` and write ``MODEL_CARD.md`` and ``pretrain.json`` there.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import platform
import shlex
import shutil
import sys
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch

from samlora.config import Config, config_from_dict

from .domains import source_image
from .folders import SPLITS, write_mask_folder
from .model_card import model_card
from .reference import count_parameters, init_reference

log = logging.getLogger(__name__)

_SOURCE_DOMAIN = 0  # first spawn-key element of the source domain (1 is the target domain)
DATA_INFO = "source_domain.json"
SHIPPED_FILES = ("config.json", "model.safetensors", "samlora.json")


@dataclass
class Recipe:
    """Everything that decides the pretrained weights (the defaults made the shipped checkpoint)."""

    seed: int = 0
    """Seed of the data, the initial weights and every training choice."""
    steps: int = 2400
    """Optimiser steps."""
    train_images: int = 4000
    """Generated training images (horizontal and vertical flips are added in training)."""
    valid_images: int = 100
    """Validation images (select best/ during training)."""
    test_images: int = 200
    """Held-out images the reported Dice is measured on."""
    image_size: int = 256
    """Side of the generated images, pixels."""
    batch_size: int = 8
    """Images per optimiser step."""
    objects_per_image: int = 8
    """Objects decoded per image per step (the image is encoded once)."""
    lr: float = 1e-3
    """Peak AdamW learning rate."""
    weight_decay: float = 0.05
    """AdamW weight decay."""
    warmup_steps: int = 100
    """Linear warm-up steps before the cosine decay."""
    eval_every: int = 400
    """Validate (and maybe save best/) every this many steps."""
    num_workers: int = 1
    """DataLoader worker processes."""


def recipe_config(recipe: Recipe, model: str | Path, data: str | Path, run: str | Path) -> Config:
    """The Trainer config of a recipe: full training of all three components, no LoRA."""
    return config_from_dict(
        {
            "model": {"name": str(model), "family": "sam"},
            "lora": {
                "components": [],
                "train_fully": ["vision_encoder", "prompt_encoder", "mask_decoder"],
            },
            "data": {
                "root": str(data),
                "format": "masks",
                "mask_type": "instance",
                "objects_per_image": recipe.objects_per_image,
            },
            "prompts": {
                "modes": ["box", "points", "box+points"],
                "max_points": 3,
                "negative_points": 1,
                "multimask": True,
                "box_jitter": 0.1,
                "box_jitter_max_px": 10.0,
            },
            "augment": {"enabled": True, "hflip": 0.5, "vflip": 0.5},
            "train": {
                "max_steps": recipe.steps,
                "batch_size": recipe.batch_size,
                "lr": recipe.lr,
                "weight_decay": recipe.weight_decay,
                "warmup_steps": recipe.warmup_steps,
                "schedule": "cosine",
                "eval_every": recipe.eval_every,
                "num_workers": recipe.num_workers,
                "seed": recipe.seed,
                "log_every": 10,
                "trackers": ["none"],
                "device": "cpu",
            },
            "loss": {"dice": 1.0, "focal": 2.0, "iou": 1.0, "resolution": "low_res"},
            "eval": {"prompt": "box", "batch_size": 8, "panels": 0},
            "output": {"dir": str(run), "overwrite": True},
        }
    )


# ----------------------------------------------------------------------------- steps


def write_source_data(root: Path, recipe: Recipe, workers: int = 2) -> Path:
    """Write ``root/{train,valid,test}`` (instance masks); reuse a complete folder written with the same settings."""
    info = {
        "generator": "samlora.demo.domains.source_image",
        "seed": recipe.seed,
        "size": recipe.image_size,
        "counts": {
            "train": recipe.train_images,
            "valid": recipe.valid_images,
            "test": recipe.test_images,
        },
    }
    marker = root / DATA_INFO
    if marker.is_file() and json.loads(marker.read_text()) == info:
        log.info("reusing the source-domain data in %s", root)
        return root
    marker.unlink(missing_ok=True)
    for split in SPLITS:
        count = info["counts"][split]
        write_mask_folder(
            root / split,
            partial(source_image, size=recipe.image_size),
            count,
            recipe.seed,
            key=(_SOURCE_DOMAIN, SPLITS.index(split)),
            stem_prefix=f"{split}_",
            mask_mode="instance",
            overwrite=True,
            workers=workers,
        )
        log.info("wrote %d %s images to %s", count, split, root / split)
    marker.write_text(json.dumps(info, indent=2) + "\n")  # last: marks a complete folder
    return root


def evaluate_folder(model_dir: Path, data: Path, split: str, prompt: str, out: Path) -> dict[str, float]:
    """Dice of a full model folder on ``data/split`` with ``prompt``, through ``samlora eval``'s code path.

    Returns the mean per-object and per-image Dice and IoU, and the object/image counts.
    """
    from samlora.evaluate.report import BASE
    from samlora.evaluate.runner import run_eval

    cfg = config_from_dict(
        {
            "data": {"format": "masks", "mask_type": "instance"},
            "eval": {"prompt": prompt, "batch_size": 8, "panels": 0},
            "train": {"num_workers": 0},
        }
    )
    report = run_eval(cfg, [], [data], split, out, base=True, model_name=str(model_dir), device="cpu")
    column = report.datasets[0]
    objects, images = report.objects[BASE][column], report.cells[BASE][column]
    return {
        "dice_object": objects["dice"]["mean"],
        "dice_image": images["dice"]["mean"],
        "iou_object": objects["iou"]["mean"],
        "objects": objects["dice"]["n"],
        "images": images["dice"]["n"],
        "by_area": dice_by_area([(r.area, r.dice) for r in report.results]),
    }


AREA_BINS = (0, 300, 1000, 3000)
"""Lower edges (pixels) of the object-size bins of the model card's Dice-by-size table."""


def dice_by_area(objects: list[tuple[int, float]]) -> list[dict[str, Any]]:
    """Mean Dice of ``(area, dice)`` pairs per :data:`AREA_BINS` bin: ``[{"min", "max", "objects", "dice"}]``."""
    edges = [*AREA_BINS, None]
    rows = []
    for lo, hi in zip(edges, edges[1:]):
        dice = [d for a, d in objects if a >= lo and (hi is None or a < hi)]
        rows.append(
            {"min": lo, "max": hi, "objects": len(dice), "dice": sum(dice) / len(dice) if dice else None}
        )
    return rows


def pretrain(recipe: Recipe, out: str | Path, work: str | Path, command: str | None = None) -> dict[str, Any]:
    """Run the whole recipe; return what ``pretrain.json`` holds."""
    from samlora.training.trainer import train

    out, work = Path(out), Path(work)
    started = time.perf_counter()
    data = write_source_data(work / "data", recipe)
    data_s = time.perf_counter() - started
    init_dir = work / "init"
    if init_dir.exists():
        shutil.rmtree(init_dir)
    init_reference(init_dir, seed=recipe.seed)
    cfg = recipe_config(recipe, init_dir, data, work / "run")
    t0 = time.perf_counter()
    result = train(cfg)
    train_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    scores = {
        prompt: evaluate_folder(result.best_dir, data, "test", prompt, work / f"eval_{prompt}")
        for prompt in ("box", "center_point")
    }
    eval_s = time.perf_counter() - t0
    total_s = time.perf_counter() - started
    valid = [r for r in result.history if r.get("split") == "valid"]
    best_step = json.loads((result.best_dir / "samlora.json").read_text()).get("step")
    summary = {
        "recipe": dataclasses.asdict(recipe),
        "command": command,
        "parameters": count_parameters(_load(result.best_dir)),
        "best_step": best_step,
        "valid_history": [{"step": r["step"], "dice": r["dice"], "loss": r["loss"]} for r in valid],
        "test": scores,
        "seconds": {
            "data": round(data_s, 1),
            "train": round(train_s, 1),
            "eval": round(eval_s, 1),
            "total": round(total_s, 1),
        },
        "machine": machine(),
    }
    ship(result.best_dir, out, summary)
    return summary


def _load(folder: Path) -> torch.nn.Module:
    import transformers

    return transformers.SamModel.from_pretrained(folder)


def machine() -> dict[str, Any]:
    """Where the run happened (for the model card)."""
    return {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": __import__("transformers").__version__,
    }


def ship(model_dir: Path, out: Path, summary: dict[str, Any]) -> Path:
    """Copy the model files to ``out`` (replacing older ones) and write the card and ``pretrain.json``."""
    out.mkdir(parents=True, exist_ok=True)
    for name in SHIPPED_FILES:
        shutil.copy2(model_dir / name, out / name)
    (out / "pretrain.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "MODEL_CARD.md").write_text(model_card(summary))
    return out


# ----------------------------------------------------------------------------- command line


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    defaults = Recipe()
    parser = argparse.ArgumentParser(
        prog="python -m samlora.demo.pretrain",
        description="Pretrain samlora's reference SAM from scratch on the synthetic source domain.",
    )
    parser.add_argument(
        "--out", required=True, help="Folder that receives the model, MODEL_CARD.md and pretrain.json."
    )
    parser.add_argument(
        "--work", default="runs/reference-pretrain", help="Working folder: data/, init/, run/, eval_*/."
    )
    parser.add_argument(
        "--write-data-only", action="store_true", help="Only write the source-domain data into WORK/data."
    )
    for f in dataclasses.fields(Recipe):
        flag = "--" + f.name.replace("_", "-")
        doc = _field_docs().get(f.name, "")
        parser.add_argument(
            flag,
            type=type(getattr(defaults, f.name)),
            default=getattr(defaults, f.name),
            help=f"{doc} (default: %(default)s)",
        )
    return parser.parse_args(argv)


def _field_docs() -> dict[str, str]:
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(Recipe))
    body = tree.body[0].body
    docs = {}
    for node, nxt in zip(body, body[1:]):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(nxt, ast.Expr)
            and isinstance(nxt.value, ast.Constant)
        ):
            docs[node.target.id] = str(nxt.value.value)
    return docs


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m samlora.demo.pretrain``."""
    args = parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    recipe = Recipe(**{f.name: getattr(args, f.name) for f in dataclasses.fields(Recipe)})
    if args.write_data_only:
        write_source_data(Path(args.work) / "data", recipe)
        return 0
    shown = argv if argv is not None else sys.argv[1:]
    command = "python -m samlora.demo.pretrain " + shlex.join(shown)
    summary = pretrain(recipe, args.out, args.work, command=command)
    box, centre = summary["test"]["box"], summary["test"]["center_point"]
    print(
        f"test Dice: box {box['dice_object']:.4f} (per image {box['dice_image']:.4f}), "
        f"centre point {centre['dice_object']:.4f}; {summary['seconds']['total'] / 60:.1f} min; "
        f"model in {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
