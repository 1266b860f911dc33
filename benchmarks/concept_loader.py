"""SAM 3 training input pipeline vs a bare PIL + pycocotools loop, in one run (interleaved A/B).

Data: a generated COCO export (Roboflow layout) of 1024 x 1024 JPEGs (quality 90) whose objects
are polygons and RLEs; SAM 3's input frame (1008 px, both sides resized). Augmentation on (flip,
scale jitter, colour jitter), 2 negative text prompts per image.

- bare (B): a torch DataLoader whose workers open each JPEG with PIL, resize it to 1008 x 1008,
  rasterise each of its annotations with pycocotools at the image's size and resize that mask to
  the frame (nearest): what a hand-written SAM 3 fine-tuning loop feeds its model (no
  augmentation, no text prompts);
- samlora first epoch: the start-up data check, which decodes every file once into the cache
  (JPEG draft mode, label layers instead of one mask per object), and one epoch of training items
  (text prompts, the augmentation plan);
- samlora cached epochs: an epoch of items from the cache (made in the trainer's process, as
  ``samlora train`` does);
- ``+ device``: the same, with each step's pairs made on the device (``frame_pairs``: the warp of
  images and label layers in one resampling, each text prompt's target masks and boxes); the
  "device" here is this machine's CPU, the worst case.

    .venv/bin/python benchmarks/concept_loader.py [--images 16] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch
from ab import loader_rows, print_table
from PIL import Image
from pycocotools import mask as mask_utils
from torch.utils.data import DataLoader

from samlora.config import config_from_dict
from samlora.data.loader import EpochLoader
from samlora.data.synthetic import write_coco_split
from samlora.models.families import FAMILIES
from samlora.models.preprocess import Preprocessing
from samlora.tasks.common import open_training_splits
from samlora.tasks.concept.data import ConceptDataset
from samlora.tasks.concept.forward import frame_pairs
from samlora.tasks.concept.task import ConceptTask

BATCH = 2


def jpeg_coco_set(root: Path, n: int, size: int) -> Path:
    """``root/train/_annotations.coco.json`` with ``n`` JPEGs of ``size`` px (quality 90)."""
    folder = root / "train"
    path = write_coco_split(folder, n, seed=0, size=size, empty_every=0)
    coco = json.loads(path.read_text())
    for image in coco["images"]:
        old = folder / image["file_name"]
        new = old.with_suffix(".jpg")
        Image.open(old).convert("RGB").save(new, quality=90)
        if old != new:
            old.unlink()
        image["file_name"] = new.name
    path.write_text(json.dumps(coco))
    return root


class Bare(torch.utils.data.Dataset):
    def __init__(self, root: Path, side: int):
        coco = json.loads((root / "train" / "_annotations.coco.json").read_text())
        self.folder, self.side, self.images = root / "train", side, coco["images"]
        self.objects: dict[int, list[dict]] = {}
        for ann in coco["annotations"]:
            self.objects.setdefault(ann["image_id"], []).append(ann)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        record = self.images[i]
        h, w = record["height"], record["width"]
        image = Image.open(self.folder / record["file_name"]).convert("RGB")
        pixels = np.asarray(image.resize((self.side, self.side), Image.Resampling.BILINEAR))
        masks = []
        for ann in self.objects.get(record["id"], []):
            seg = ann["segmentation"]
            rles = mask_utils.frPyObjects(seg, h, w) if isinstance(seg, list) else [seg]
            mask = mask_utils.decode(mask_utils.merge(rles) if len(rles) > 1 else rles[0])
            masks.append(
                np.asarray(Image.fromarray(mask).resize((self.side, self.side), Image.Resampling.NEAREST))
            )
        return pixels, masks, [a["category_id"] for a in self.objects.get(record["id"], [])]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--frame", type=int, default=1008, help="SAM 3's input side")
    args = parser.parse_args()
    torch.set_num_threads(2)
    spec = FAMILIES["sam3"]
    pre = Preprocessing(args.frame, spec.resize, spec.mean, spec.std, low_res_size=4 * (args.frame // 14))
    with tempfile.TemporaryDirectory() as tmp:
        root = jpeg_coco_set(Path(tmp), args.images, args.size)
        cfg = config_from_dict(
            {
                "model": {"name": "tiny-sam3"},
                "data": {"root": str(root), "cache": True, "val_fraction": 0.0},
                "augment": {"hflip": 0.5, "scale_min": 0.8, "scale_max": 1.2, "brightness": 0.2, "contrast": 0.2},
                "prompts": {"negatives_per_image": 2},
                "train": {"batch_size": BATCH},
            }
        )  # fmt: skip
        n = args.images

        def bare(workers: int):
            return lambda: list(
                DataLoader(Bare(root, pre.image_size), batch_size=BATCH, num_workers=workers, collate_fn=list)
            )

        def start(workers: int) -> EpochLoader:
            splits = open_training_splits(cfg, pre.frame)
            dataset = ConceptDataset(splits.train, cfg, train=True, images=splits.images)
            own = 0 if dataset.items_in_process else workers  # as the trainer chooses
            return EpochLoader(dataset, BATCH, list, own, ConceptTask.set_epoch)

        rows = loader_rows(
            bare, start, lambda items: frame_pairs(items, pre, torch.device("cpu")), n, args.repeats
        )
        print_table(
            f"{n} COCO JPEGs of {args.size} px -> SAM 3's {pre.image_size} px frame, batch {BATCH}, "
            f"{torch.get_num_threads()} threads",
            rows,
            ("samlora stage", "samlora images/s (min / median)", "bare images/s (min / median)", "speed ratio (min / median)"),
        )  # fmt: skip


if __name__ == "__main__":
    main()
