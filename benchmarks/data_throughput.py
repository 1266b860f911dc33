"""Images per second of the training input pipeline on generated 1024-px images.

Measures, for a mask-folder data set of 1024 x 1024 (and 1024 x 768) images:
decode + augment + object selection + prompt sampling in DataLoader workers
(``num_workers`` 0 and 2), then the device side (resize to the model input,
normalise, prompts and targets into the input frame) for a SAM-sized input.

    .venv/bin/python benchmarks/data_throughput.py [--images 64] [--batch-size 4]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from samlora.config import config_from_dict
from samlora.data.layout import open_split
from samlora.data.loader import make_loader
from samlora.data.synthetic import write_mask_split
from samlora.models.families import FAMILIES
from samlora.models.preprocess import Preprocessing
from samlora.tasks.promptable.data import PromptableDataset
from samlora.tasks.promptable.segmenter import to_device


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_mask_split(root / "train", args.images, seed=0, size=(1024, 1024), instance=True)
        cfg = config_from_dict(
            {
                "data": {"root": str(root), "mask_type": "instance"},
                "augment": {"hflip": 0.5, "scale_min": 0.8, "scale_max": 1.2, "brightness": 0.2},
            }
        )
        split = open_split(root, "train", "masks", mask_kind="instance")
        dataset = PromptableDataset(split, cfg, train=True)
        pre = Preprocessing(
            image_size=1024,
            resize="longest_side",
            mean=FAMILIES["sam"].mean,
            std=FAMILIES["sam"].std,
            low_res_size=256,
        )
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        print(f"{args.images} images of 1024 x 1024, batch {args.batch_size}, device side on {device}")
        print(f"{'stage':<44} {'images/s':>10}")
        for workers in (0, 2):
            loader = make_loader(dataset, range(len(dataset)), args.batch_size, list, workers)
            start = time.perf_counter()
            batches = list(loader)
            rate = args.images / (time.perf_counter() - start)
            print(f"{f'workers={workers}: decode+augment+prompts':<44} {rate:>10.1f}")
        start = time.perf_counter()
        for batch in batches:
            b = to_device(batch, pre, device)
            targets = torch.cat([pre.masks(m, g, size=256) for m, g in zip(b.masks, b.geoms)])
        if device.type == "cuda":
            torch.cuda.synchronize()
        rate = args.images / (time.perf_counter() - start)
        print(f"{'device: resize+normalise+prompts+targets':<44} {rate:>10.1f}")
        del targets


if __name__ == "__main__":
    main()
