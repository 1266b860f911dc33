"""Training and evaluation samples for promptable models, built in DataLoader workers.

A sample is one decoded (and, in training, augmented) image at its own
resolution, its selected objects' masks, and prompts for each object in pixels
of that image: a (jittered) box, positive/negative points, and the exact box
and centre point used in evaluation. Every random choice comes from a generator
seeded by ``(seed, epoch, index)``, so it does not depend on which worker or
process decodes the image, and a resumed run sees the same prompts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from samlora.config import Config
from samlora.data.prompts import center_point, jitter_box, mask_to_box, sample_points, seed_for
from samlora.data.records import SegDataset
from samlora.data.transforms import Augment
from samlora.tasks.common import DecodedImages

PAD_LABEL = -10


@dataclass
class PromptableSample:
    """One image and its objects (``K`` may be 0), tensors at the image's resolution.

    Attributes:
        image: ``3 x H x W`` uint8.
        masks: ``K x H x W`` bool, target objects.
        ignore: ``H x W`` bool, crowd regions (excluded from metrics), or ``None``.
        boxes: ``K x 4`` XYXY training boxes (jittered in training).
        exact_boxes: ``K x 4`` XYXY tight boxes.
        points: ``K x P x 2`` XY points, ``labels``: ``K x P`` (1, 0, or -10 padding).
        centers: ``K x 2`` XY interior point farthest from the edge.
        category_ids: ``K`` int64.
    """

    image: torch.Tensor
    masks: torch.Tensor
    ignore: torch.Tensor | None
    boxes: torch.Tensor
    exact_boxes: torch.Tensor
    points: torch.Tensor
    labels: torch.Tensor
    centers: torch.Tensor
    category_ids: torch.Tensor
    image_id: int | str
    file_name: str


class PromptableDataset(Dataset):
    """Decode + augment + choose objects + sample prompts, per image.

    Args:
        split: the listed split.
        cfg: the run's config (data, prompts, augment, eval sections are used).
        train: training mode (augmentation, random object subset, jitter) or
            evaluation mode (every object, exact boxes, deterministic points).
    """

    def __init__(self, split: SegDataset, cfg: Config, train: bool):
        self.split = split
        self.cfg = cfg
        self.train = train
        self.epoch = 0
        aug = cfg.augment
        self.augment = Augment(
            hflip=aug.hflip,
            vflip=aug.vflip,
            rot90=aug.rot90,
            scale=(aug.scale_min, aug.scale_max),
            crop=aug.crop,
            brightness=aug.brightness,
            contrast=aug.contrast,
            saturation=aug.saturation,
            hue=aug.hue,
        )
        self.use_augment = train and aug.enabled
        self.decoded = DecodedImages(split, cfg)

    def __len__(self) -> int:
        return len(self.split.images)

    def __getitem__(self, index: int) -> PromptableSample:
        cfg = self.cfg
        rng = np.random.default_rng(
            seed_for(cfg.train.seed, "sample", self.epoch if self.train else -1, index)
        )
        sample = self.decoded[index]
        if self.use_augment:
            sample = self.augment(sample, rng)
        crowd = sample.iscrowd.astype(bool)
        keep = np.ones(len(crowd), dtype=bool) if (cfg.data.include_crowd and self.train) else ~crowd
        keep &= sample.masks.reshape(len(crowd), -1).any(axis=1) if len(crowd) else keep
        chosen = np.flatnonzero(keep)
        if self.train and len(chosen) > cfg.data.objects_per_image:
            chosen = np.sort(rng.choice(chosen, cfg.data.objects_per_image, replace=False))
        masks = sample.masks[chosen]
        height, width = sample.size
        exact = np.stack([mask_to_box(m) for m in masks]) if len(masks) else np.zeros((0, 4), np.float32)
        if self.train:
            pr = cfg.prompts
            boxes = (
                np.stack(
                    [jitter_box(b, rng, pr.box_jitter, pr.box_jitter_max_px, (height, width)) for b in exact]
                )
                if len(masks)
                else exact
            )
            n_points = pr.max_points + pr.negative_points
            points, labels = _points(
                masks, rng, pr.max_points, pr.negative_points, n_points, random_counts=True
            )
        else:
            boxes = exact
            n_points = cfg.eval.num_points
            points, labels = _points(masks, rng, cfg.eval.num_points, 0, n_points, random_counts=False)
        if self.train or not len(masks):  # centre points serve evaluation prompts only
            centers = np.zeros((len(masks), 2), np.float32)
        else:
            centers = np.stack([center_point(m) for m in masks])
        ignore = sample.masks[crowd].any(axis=0) if crowd.any() else None
        return PromptableSample(
            image=torch.from_numpy(np.require(sample.image, requirements=["C", "W"]))
            .permute(2, 0, 1)
            .contiguous(),
            masks=torch.from_numpy(np.require(masks, requirements=["C", "W"])),
            ignore=torch.from_numpy(np.require(ignore, requirements=["C", "W"]))
            if ignore is not None
            else None,
            boxes=torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4),
            exact_boxes=torch.as_tensor(exact, dtype=torch.float32).reshape(-1, 4),
            points=torch.as_tensor(points, dtype=torch.float32),
            labels=torch.as_tensor(labels, dtype=torch.int64),
            centers=torch.as_tensor(centers, dtype=torch.float32).reshape(-1, 2),
            category_ids=torch.as_tensor(sample.category_ids[chosen], dtype=torch.int64),
            image_id=sample.image_id,
            file_name=sample.file_name,
        )


def _points(
    masks: np.ndarray, rng: np.random.Generator, max_pos: int, max_neg: int, width: int, random_counts: bool
) -> tuple[np.ndarray, np.ndarray]:
    """``K x width x 2`` points and ``K x width`` labels, padded with label -10."""
    points = np.zeros((len(masks), width, 2), np.float32)
    labels = np.full((len(masks), width), PAD_LABEL, np.int64)
    for k, mask in enumerate(masks):
        n_pos = int(rng.integers(1, max_pos + 1)) if random_counts else max_pos
        n_neg = int(rng.integers(0, max_neg + 1)) if random_counts else max_neg
        pts, lab = sample_points(mask, rng, n_pos, n_neg)
        points[k, : len(pts)] = pts
        labels[k, : len(lab)] = lab
    return points, labels
