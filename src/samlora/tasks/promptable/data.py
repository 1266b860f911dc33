"""Training and evaluation samples for promptable models, built in DataLoader workers.

Training: a :class:`FrameItem` is one image as decoded once into the model's input frame (see
:mod:`samlora.data.frame`), the objects chosen for this step and every random number the step
needs (the augmentation plan, box noise, point draws); augmentation, masks, boxes and points
are made from it on the device, for the whole batch at once
(:mod:`samlora.tasks.promptable.frames`). Evaluation: a :class:`PromptableSample` is the image
at its own resolution with every object's mask and exact prompts, so metrics are computed at the
original resolution. Every random choice comes from a generator seeded by
``(seed, epoch, index)``, so it does not depend on which worker or process decodes the image, and
a resumed run sees the same prompts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from samlora.config import Config
from samlora.data.cache import DecodedCache
from samlora.data.frame import FrameSample
from samlora.data.prompts import center_point, mask_to_box, sample_points, seed_for
from samlora.data.records import SegDataset
from samlora.data.transforms import AugmentPlan
from samlora.tasks.common import DecodedImages, augment_from, frame_tensors

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


@dataclass
class FrameItem:
    """One training image in the input frame with every random choice of its step (``K`` objects).

    Attributes:
        image: ``3 x h x w`` uint8, as cached (shrunk to fit the frame).
        labels: ``L x h x w`` label layers; object ``k`` is ``labels[layer[k]] == value[k]``.
        layer, value: ``K`` int64, where the chosen objects are.
        category_ids: ``K`` int64.
        plan: the augmentation to apply.
        jitter: ``K x 4`` uniform in ``[-1, 1]``: box noise of each side, in units of its bound.
        point_draws: ``K x P`` uniform in ``[0, 1)``: which pixel each point takes.
        point_labels: ``K x P``: 1 positive, 0 negative, -10 padding.
        pixel_scale: stored pixels per pixel of the original image (for pixel-sized settings).
        index: the image's index in the split (the key of its cached embedding).
    """

    image: torch.Tensor
    labels: torch.Tensor
    layer: torch.Tensor
    value: torch.Tensor
    category_ids: torch.Tensor
    plan: AugmentPlan
    jitter: torch.Tensor
    point_draws: torch.Tensor
    point_labels: torch.Tensor
    pixel_scale: float
    index: int

    @property
    def num_objects(self) -> int:
        return int(self.layer.numel())


class PromptableDataset(Dataset):
    """Choose objects and draw a step's randomness (training), or decode + exact prompts (evaluation).

    Args:
        split: the listed split.
        cfg: the run's config (data, prompts, augment, eval sections are used).
        train: training mode (:class:`FrameItem` s from ``images``: augmentation, random object
            subset, jitter) or evaluation mode (:class:`PromptableSample` s: every object, exact
            boxes, deterministic points, at the original resolution).
        images: the training images in the input frame (training mode only).
    """

    def __init__(self, split: SegDataset, cfg: Config, train: bool, images: DecodedCache | None = None):
        self.split = split
        self.cfg = cfg
        self.train = train
        self.epoch = 0
        self.augment = augment_from(cfg)
        self.use_augment = train and cfg.augment.enabled
        if train and images is None:
            raise ValueError("a training PromptableDataset needs its images in the input frame")
        self.images = images
        self.decoded = None if train else DecodedImages(split, cfg)

    def __len__(self) -> int:
        return len(self.split.images)

    @property
    def items_in_process(self) -> bool:
        """Training items that come from the kept decoded cache cost well under a millisecond:
        less than passing them between processes, so the trainer makes them in its own process."""
        return self.train and self.images is not None and self.images.keep

    def __getitem__(self, index: int) -> PromptableSample | FrameItem:
        rng = np.random.default_rng(
            seed_for(self.cfg.train.seed, "sample", self.epoch if self.train else -1, index)
        )
        if self.train:
            return self._frame_item(index, rng)
        sample = self.decoded[index]
        crowd = sample.iscrowd.astype(bool)
        keep = ~crowd
        keep &= sample.masks.reshape(len(crowd), -1).any(axis=1) if len(crowd) else keep
        chosen = np.flatnonzero(keep)
        masks = sample.masks[chosen]
        exact = np.stack([mask_to_box(m) for m in masks]) if len(masks) else np.zeros((0, 4), np.float32)
        boxes = exact
        n_points = self.cfg.eval.num_points
        points, labels = _points(masks, rng, self.cfg.eval.num_points, 0, n_points, random_counts=False)
        centers = np.stack([center_point(m) for m in masks]) if len(masks) else np.zeros((0, 2), np.float32)
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

    def _frame_item(self, index: int, rng: np.random.Generator) -> FrameItem:
        """Objects and randomness of one training image (nothing is resampled on the CPU)."""
        cfg, pr = self.cfg, self.cfg.prompts
        sample: FrameSample = self.images[index]
        crowd = sample.iscrowd.astype(bool)
        keep = (np.ones(len(crowd), bool) if cfg.data.include_crowd else ~crowd) & (sample.areas > 0)
        chosen = np.flatnonzero(keep)
        if len(chosen) > cfg.data.objects_per_image:
            chosen = np.sort(rng.choice(chosen, cfg.data.objects_per_image, replace=False))
        if self.use_augment:  # zoom and crop windows keep a pixel of a chosen object
            plan = self.augment.plan(sample.size, sample.pixels_of, chosen, rng, sample.boxes)
        else:
            plan = AugmentPlan.identity(sample.size)
        width = pr.max_points + pr.negative_points
        labels = np.full((len(chosen), width), PAD_LABEL, np.int64)
        for k in range(len(chosen)):
            n_pos = int(rng.integers(1, pr.max_points + 1))
            n_neg = int(rng.integers(0, pr.negative_points + 1))
            labels[k, :n_pos] = 1
            labels[k, n_pos : n_pos + n_neg] = 0
        return FrameItem(
            **frame_tensors(sample, chosen),
            plan=plan,
            jitter=torch.as_tensor(rng.uniform(-1.0, 1.0, size=(len(chosen), 4)), dtype=torch.float32),
            point_draws=torch.as_tensor(rng.random((len(chosen), width)), dtype=torch.float32),
            point_labels=torch.from_numpy(labels),
            pixel_scale=sample.size[1] / sample.original_size[1],
            index=index,
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
