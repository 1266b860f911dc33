"""Prediction throughput: images/s and prompts/s over a folder of 1024-px images.

Each image is encoded once (``set_image``) and ``--prompts`` box prompts are
decoded from that embedding; masks are mapped back to the original resolution.
Models: the tiny SAM preset and a randomly initialised SAM ViT-B (1024 px).

    .venv/bin/python benchmarks/predict_throughput.py [--models tiny vit-b] [--images 8] [--prompts 8]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import transformers

from samlora.data.images import load_image
from samlora.data.synthetic import write_mask_split
from samlora.predict.predictor import Predictor

transformers.logging.set_verbosity_error()
transformers.logging.disable_progress_bar()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", nargs="+", default=["tiny", "vit-b"])
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--precision", default="no", choices=["no", "bf16", "fp16"])
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        folder = write_mask_split(Path(tmp) / "photos", args.images, seed=0, size=(1024, 1024)) / "images"
        paths = sorted(folder.glob("*.png"))
        boxes = [
            [[x, y, x + w, y + h] for x, y, w, h in rng.integers(0, 500, size=(args.prompts, 4))]
            for _ in paths
        ]
        device = "cuda" if torch.cuda.is_available() else "cpu"
        print(
            f"{len(paths)} images of 1024 x 1024, {args.prompts} box prompts each, device {device}, precision {args.precision}"
        )
        print(f"{'model':<8} {'encode s/img':>13} {'decode ms/prompt':>17} {'images/s':>9} {'prompts/s':>10}")
        for model in args.models:
            if model == "tiny":
                name = "tiny-sam"
            else:
                torch.manual_seed(0)
                name = str(Path(tmp) / "vit-b")
                transformers.SamModel(transformers.SamConfig()).save_pretrained(name)
            predictor = Predictor(name, device=device, precision=args.precision)
            predictor.predict(load_image(paths[0]), boxes=boxes[0][:1])  # warm-up
            encode = decode = 0.0
            start = time.perf_counter()
            for path, image_boxes in zip(paths, boxes):
                t0 = time.perf_counter()
                predictor.set_image(load_image(path))
                t1 = time.perf_counter()
                predictor.predict(boxes=image_boxes)
                t2 = time.perf_counter()
                encode, decode = encode + t1 - t0, decode + t2 - t1
            total = time.perf_counter() - start
            n = len(paths)
            print(
                f"{model:<8} {encode / n:>13.3f} {1000 * decode / (n * args.prompts):>17.2f} {n / total:>9.2f} "
                f"{n * args.prompts / total:>10.1f}"
            )


if __name__ == "__main__":
    main()
