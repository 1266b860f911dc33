"""Frozen-encoder epochs: embeddings computed once and reused vs re-encoding every epoch (A/B).

The shipped reference model, LoRA only on the mask decoder (the image encoder frozen, as
MedSAM trains), no augmentation, box prompts, batch 2. Both runs train the same steps; the
time of the epochs after the first is read from each run's own log (training time only).

    .venv/bin/python benchmarks/frozen_encoder.py [--images 16] [--epochs 4] [--repeats 2]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
from ab import jpeg_mask_set, print_table, summary

from samlora.config import config_from_dict
from samlora.training.log import read_log
from samlora.training.trainer import train

BATCH = 2


def later_epochs_seconds(model: str, root: Path, out: Path, images: int, epochs: int, cache: str) -> float:
    """Seconds per epoch after the first, from the run's cumulative images/s at each step."""
    steps_per_epoch = images // BATCH
    cfg = config_from_dict(
        {
            "model": {"name": model},
            "lora": {"rank": 4, "components": ["mask_decoder"], "target_modules": ["all-linear"]},
            "data": {"root": str(root), "cache": True, "val_fraction": 0.0, "mask_type": "binary"},
            "prompts": {"modes": ["box"]},
            "augment": {"enabled": False},
            "train": {"max_steps": epochs * steps_per_epoch, "batch_size": BATCH, "num_workers": 0, "log_every": 1,
                      "trackers": ["none"], "embedding_cache": cache},
            "output": {"dir": str(out), "overwrite": True},
        }
    )  # fmt: skip
    train(cfg)
    records = {r["step"]: r for r in read_log(out) if r["split"] == "train"}

    def elapsed(step: int) -> float:
        return step * BATCH / records[step]["images_per_s"]

    return (elapsed(epochs * steps_per_epoch) - elapsed(steps_per_epoch)) / (epochs - 1)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--model", default="samlora-reference")
    args = parser.parse_args()
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        root = jpeg_mask_set(Path(tmp) / "data", args.images)
        seconds: dict[str, list[float]] = {"auto": [], "off": []}
        for _ in range(args.repeats):
            for cache in ("auto", "off"):
                run = Path(tmp) / f"run-{cache}"
                seconds[cache].append(
                    later_epochs_seconds(args.model, root, run, args.images, args.epochs, cache)
                )
        (c_min, c_med), (r_min, r_med) = summary(seconds["auto"]), summary(seconds["off"])
        print_table(
            f"{args.model}, {args.images} images, {args.epochs} epochs, batch {BATCH}, {args.repeats} repeats",
            [
                (
                    "embeddings cached",
                    f"{c_min:.3f} / {c_med:.3f}",
                    f"{r_min / c_min:.1f}x / {r_med / c_med:.1f}x",
                ),
                ("re-encoding", f"{r_min:.3f} / {r_med:.3f}", "1.0x"),
            ],
            ("epochs after the first", "s per epoch (min / median)", "speed-up (min / median)"),
        )


if __name__ == "__main__":
    main()
