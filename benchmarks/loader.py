"""Training input pipeline vs a bare PIL loop, in one run (interleaved A/B, min and median).

Data: generated 1024 x 1024 JPEGs (quality 90) with PNG masks; the model frame of the shipped
reference model (256 px, longest side). Augmentation on (flip, scale jitter, colour jitter).

- bare (B): a torch DataLoader whose workers open each JPEG with PIL, resize it to 256 px and
  read its mask (no augmentation, no objects, no prompts);
- samlora first epoch: the start-up data check that decodes every file once into the cache
  (JPEG draft mode, label layers) and one epoch of training items;
- samlora cached epochs: an epoch of training items from the cache. As in ``samlora train``, items
  from the kept cache are made in the main process whatever ``train.num_workers`` says (passing
  them between processes costs more than making them); ``workers`` then only parallelise the
  first epoch's data check, which decodes every file (threads);
- ``+ device``: the same, with the batch made on the device (augmentation, masks, boxes,
  points); here the "device" is this machine's CPU, so this is the worst case.

    .venv/bin/python benchmarks/loader.py [--images 32] [--repeats 3]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
from ab import bare_decode, jpeg_mask_set, loader_rows, print_table
from torch.utils.data import DataLoader

from samlora.config import config_from_dict
from samlora.data.layout import open_split
from samlora.data.loader import EpochLoader
from samlora.models.loading import load_model
from samlora.tasks.common import open_training_splits
from samlora.tasks.promptable.data import PromptableDataset
from samlora.tasks.promptable.frames import frame_batch
from samlora.tasks.promptable.task import PromptableTask

BATCH = 2


class Bare(torch.utils.data.Dataset):
    def __init__(self, pairs: list[tuple[Path, Path]], side: int):
        self.pairs, self.side = pairs, side

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int):
        return bare_decode(*self.pairs[i], self.side)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--model", default="samlora-reference")
    args = parser.parse_args()
    torch.set_num_threads(2)
    loaded = load_model(args.model, device="cpu")
    pre = loaded.preprocessing
    with tempfile.TemporaryDirectory() as tmp:
        root = jpeg_mask_set(Path(tmp), args.images, (args.size, args.size))
        cfg = config_from_dict(
            {
                "data": {"root": str(root), "cache": True, "val_fraction": 0.0},
                "augment": {
                    "hflip": 0.5,
                    "scale_min": 0.8,
                    "scale_max": 1.2,
                    "brightness": 0.2,
                    "contrast": 0.2,
                },
                "train": {"batch_size": BATCH},
            }
        )
        split = open_split(root, "train", "masks")
        pairs = [(r.path, r.mask_path) for r in split.images]
        n = len(pairs)

        def bare(workers: int):
            return lambda: list(
                DataLoader(
                    Bare(pairs, pre.image_size), batch_size=BATCH, num_workers=workers, collate_fn=list
                )
            )

        def start(workers: int) -> EpochLoader:
            splits = open_training_splits(cfg, pre.frame)
            dataset = PromptableDataset(splits.train, cfg, train=True, images=splits.images)
            own = 0 if dataset.items_in_process else workers  # as the trainer chooses
            return EpochLoader(dataset, BATCH, list, own, PromptableTask.set_epoch)

        rows = loader_rows(
            bare, start, lambda items: frame_batch(items, pre, cfg, torch.device("cpu")), n, args.repeats
        )
        print_table(
            f"{n} JPEGs of {args.size} px -> {pre.image_size} px frame, batch {BATCH}, {torch.get_num_threads()} threads",
            rows,
            (
                "samlora stage",
                "samlora images/s (min / median)",
                "bare PIL images/s (min / median)",
                "speed ratio (min / median)",
            ),
        )


if __name__ == "__main__":
    main()
