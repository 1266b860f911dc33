"""Opening a run's data splits, checked before any training starts."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch

from samlora.config import Config
from samlora.data.cache import DecodedCache, default_cache_dir
from samlora.data.categories import non_prompt_categories
from samlora.data.check import check_dataset
from samlora.data.frame import Frame, FrameSample
from samlora.data.layout import open_split, open_split_if_present
from samlora.data.records import ImageRecord, SegDataset
from samlora.data.summary import DataReport
from samlora.data.transforms import Augment
from samlora.errors import DataError

log = logging.getLogger(__name__)


def mask_options(cfg: Config) -> dict[str, object]:
    """Reader options of mask-folder data sets, from the data section."""
    d = cfg.data
    return {
        "mask_kind": d.mask_type,
        "class_names": d.class_names or None,
        "binary_objects": d.binary_objects,
        "min_object_area": d.min_object_area,
        "val_fraction": d.val_fraction,
        "test_fraction": d.test_fraction,
        "seed": d.split_seed,
    }


def checked(
    split: SegDataset, workers: int, max_pixels: int, seen: set[tuple[str, int]] | None = None
) -> SegDataset:
    """Run the full data check; refuse the split (with the whole report) when it has errors.

    Warnings are logged, except a category samlora itself keeps out of the text prompts (a Roboflow
    super-category, an unannotated duplicate): that is said once per data set, at info level, for the
    splits sharing ``seen`` (``samlora data check`` lists it with every split).
    """
    check_report(split, workers, max_pixels, seen)
    return split


def check_report(
    split: SegDataset,
    workers: int,
    max_pixels: int,
    seen: set[tuple[str, int]] | None = None,
    frame: Frame | None = None,
    keep: bool = False,
) -> DataReport:
    """:func:`checked`, returning the report: with ``frame`` images are decoded shrunk to it, and
    with ``keep`` the report holds them (``report.samples``) for training."""
    report = check_dataset(
        split, deep=True, workers=max(workers, 1), frame=frame, keep=keep, max_pixels=max_pixels
    )
    handled = {f"category id {cid}": (cid, why) for cid, why in non_prompt_categories(split).items()}
    seen = set() if seen is None else seen
    for problem in report.problems:
        if problem.severity == "warning" and problem.record in handled:
            cid, why = handled[problem.record]
            if (str(split.root), cid) not in seen:
                seen.add((str(split.root), cid))
                log.info(
                    "%s: category id %d '%s' (%s) is no text prompt; samlora leaves it out",
                    split.root, cid, split.category_names.get(cid, "?"), why,
                )  # fmt: skip
        elif problem.severity == "warning":
            log.warning("%s", problem)
    if not report.ok:
        raise DataError(
            f"the '{split.split}' split of {split.root} has errors; fix them (see `samlora data check {split.root}`) "
            f"before training:\n{report.format()}",
            report=report,
        )
    return report


@dataclass
class TrainingSplits:
    """The checked splits of a run; ``images``: the training images in the model's input frame."""

    train: SegDataset
    valid: SegDataset | None
    images: DecodedCache


def open_training_splits(cfg: Config, frame: Frame) -> TrainingSplits:
    """The checked train split (decoded into ``frame``) and the checked validation split."""
    d = cfg.data
    if not d.root:
        raise DataError(
            "data.root is not set; pass --data.root PATH (a COCO export or images/ + masks/ folders)"
        )
    options, seen = mask_options(cfg), set()
    train = open_split(d.root, d.train_split, d.format, **options)
    folder = None
    if d.cache and len(train.images) * frame.size**2 * 4 > d.cache_memory_mb * 2**20:
        folder = Path(d.cache_dir) if d.cache_dir else default_cache_dir()
    report = check_report(train, cfg.train.num_workers, d.max_pixels, seen, frame, keep=bool(d.cache))
    if not train.images:
        raise DataError(f"the '{d.train_split}' split of {d.root} has no images")
    decode_options = {"binary_objects": "components", "min_object_area": 0, **train.decode_options}
    images = DecodedCache(
        train.images,
        partial(_frame_sample, frame=frame, options=decode_options, max_pixels=d.max_pixels),
        frame,
        decode_options,
        folder=folder,
        keep=bool(d.cache),
    )
    for index, sample in enumerate(report.samples or []):
        images.put(index, sample)
    if d.cache:
        where = f"memory-mapped in {folder}" if folder else "in memory"
        log.info(
            "decoded %d training images once into the %d-px input frame, %s",
            len(train.images),
            frame.size,
            where,
        )
    valid = open_split_if_present(d.root, d.valid_split, d.format, **options)
    if valid is not None:
        checked(valid, cfg.train.num_workers, d.max_pixels, seen)
    return TrainingSplits(train, valid, images)


def _frame_sample(
    record: ImageRecord, frame: Frame, options: dict[str, object], max_pixels: int
) -> FrameSample:
    from samlora.data import decode

    return decode.load_sample(record, frame=frame, max_pixels=max_pixels, **options)


class DecodedImages:
    """Decoded samples of a split at the original resolution (evaluation), read on demand or, with
    ``data.cache``, all at once up front.

    Caching happens in the main process before any DataLoader worker starts, so
    forked workers share the decoded arrays instead of each decoding again.
    """

    def __init__(self, split: SegDataset, cfg: Config):
        self.split = split
        self.options = {
            "binary_objects": cfg.data.binary_objects,
            "min_object_area": cfg.data.min_object_area,
            "max_pixels": cfg.data.max_pixels,
        }
        self.cache = [self._load(i) for i in range(len(split.images))] if cfg.data.cache else None
        if self.cache is not None:
            log.info("cached %d decoded images of the '%s' split in memory", len(self.cache), split.split)

    def _load(self, index: int):
        from samlora.data.decode import load_sample

        return load_sample(self.split.images[index], **self.options)

    def __getitem__(self, index: int):
        return self.cache[index] if self.cache is not None else self._load(index)


def augment_from(cfg: Config) -> Augment:
    """The training augmentation the ``augment`` section describes."""
    a = cfg.augment
    return Augment(
        hflip=a.hflip, vflip=a.vflip, rot90=a.rot90, scale=(a.scale_min, a.scale_max), crop=a.crop,
        brightness=a.brightness, contrast=a.contrast, saturation=a.saturation, hue=a.hue,
    )  # fmt: skip


def frame_tensors(sample: FrameSample, chosen: np.ndarray) -> dict[str, torch.Tensor]:
    """A cached frame as a training item's tensors: ``image`` (``3 x h x w`` uint8), ``labels``
    (``L x h x w``), and for the ``chosen`` objects ``layer``, ``value`` and ``category_ids``
    (object ``k`` is ``labels[layer[k]] == value[k]``)."""
    return {
        "image": torch.from_numpy(np.array(sample.image)).permute(2, 0, 1),
        "labels": torch.from_numpy(np.array(sample.labels)),
        "layer": torch.as_tensor(sample.layers[chosen], dtype=torch.int64),
        "value": torch.as_tensor(chosen + 1, dtype=torch.int64),
        "category_ids": torch.as_tensor(sample.category_ids[chosen], dtype=torch.int64),
    }
