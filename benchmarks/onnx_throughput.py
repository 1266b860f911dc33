"""ONNX vs PyTorch prediction throughput on CPU: images/s through ``Predictor`` with each backend.

The model (a preset, a folder, or ``--adapter`` merged into its base) is exported with
``samlora export onnx`` into a temporary folder; then, interleaved over ``--repeats``, the
PyTorch Predictor (adapter merged, fp32) and the onnxruntime Predictor (``--onnx``) each
predict the same images with the same box prompts (encode once, decode every box, masks at
the original resolution). Prints min and median images/s of each and their ratio, and how
many predicted masks are identical.

    .venv/bin/python benchmarks/onnx_throughput.py [--model samlora-reference] [--adapter RUN/best]
        [--images 8] [--prompts 4] [--repeats 5] [--size 512] [--fp16]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import transformers

from samlora.export.onnx import export_onnx
from samlora.export.runtime import OnnxBackend
from samlora.predict.predictor import Predictor

transformers.logging.set_verbosity_error()
transformers.logging.disable_progress_bar()


def images_per_s(
    predictor: Predictor, images: list[np.ndarray], boxes: list[list[list[float]]]
) -> tuple[float, list]:
    start, masks = time.perf_counter(), []
    for image, image_boxes in zip(images, boxes):
        masks.append(predictor.predict(image=image, boxes=image_boxes).masks)
    return len(images) / (time.perf_counter() - start), masks


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="samlora-reference")
    parser.add_argument("--adapter", default=None)
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--prompts", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--size", type=int, default=512, help="Side of the square test images, pixels.")
    parser.add_argument("--fp16", action="store_true", help="Also time the fp16 graphs.")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    images = [
        rng.integers(0, 255, size=(args.size, args.size, 3), dtype=np.uint8) for _ in range(args.images)
    ]
    boxes = []
    for _ in images:
        xy = rng.integers(0, args.size // 2, size=(args.prompts, 2))
        wh = rng.integers(args.size // 8, args.size // 2, size=(args.prompts, 2))
        boxes.append(np.concatenate([xy, xy + wh], axis=1).astype(float).tolist())
    with tempfile.TemporaryDirectory() as tmp:
        source = args.adapter or args.model
        t0 = time.perf_counter()
        export_onnx(
            source, Path(tmp) / "onnx", model_name=args.model if args.adapter else None, fp16=args.fp16
        )
        export_s = time.perf_counter() - t0
        backends = {
            "pytorch fp32": Predictor(
                args.model,
                adapters=[args.adapter] if args.adapter else None,
                device="cpu",
                merge=bool(args.adapter),
            ),
            "onnxruntime fp32": Predictor(backend=OnnxBackend(Path(tmp) / "onnx", device="cpu")),
        }
        if args.fp16:
            backends["onnxruntime fp16"] = Predictor(backend=OnnxBackend(Path(tmp) / "onnx", "cpu", "fp16"))
        for predictor in backends.values():  # warm-up
            images_per_s(predictor, images[:1], boxes[:1])
        rates: dict[str, list[float]] = {name: [] for name in backends}
        masks: dict[str, list] = {}
        for _ in range(args.repeats):
            for name, predictor in backends.items():
                rate, masks[name] = images_per_s(predictor, images, boxes)
                rates[name].append(rate)
    print(
        f"{source} on {torch.get_num_threads()} CPU threads: {args.images} images of {args.size} x {args.size}, "
        f"{args.prompts} boxes each, {args.repeats} interleaved repeats; export + verification {export_s:.1f} s"
    )
    base = statistics.median(rates["pytorch fp32"])
    print("| backend | min images/s | median images/s | median vs PyTorch | masks identical to PyTorch |")
    print("|---|---|---|---|---|")
    reference = [m for image in masks["pytorch fp32"] for m in image]
    for name, values in rates.items():
        ours = [m for image in masks[name] for m in image]
        same = sum(bool((a == b).all()) for a, b in zip(ours, reference))
        agree = np.mean([(a == b).mean() for a, b in zip(ours, reference)])
        print(
            f"| {name} | {min(values):.2f} | {statistics.median(values):.2f} | {statistics.median(values) / base:.2f}x "
            f"| {same}/{len(reference)} ({100 * agree:.3f} % of pixels) |"
        )


if __name__ == "__main__":
    main()
