"""Samples for concept (text-prompt) models.

Training items stay in the input frame as cached (:class:`ConceptFrameItem`: the image, its
label layers, the target objects, the text prompts and the augmentation drawn for the step);
:func:`samlora.tasks.concept.forward.frame_pairs` augments them batched on the device and makes
each pair's targets there. Evaluation samples are decoded at each image's original resolution.

Each image gets one text prompt per category present (its lower-cased name or
a synonym) with every object of that category as its targets, plus negative
prompts drawn only from categories absent from the image. Categories that are
no concept (a Roboflow super-category, an unannotated duplicate name; see
:mod:`samlora.data.categories`) are never prompts. Validation uses the
same negatives for an image on every call, so the validation loss is stable.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from samlora.config import Config
from samlora.data.cache import DecodedCache
from samlora.data.categories import prompt_categories
from samlora.data.frame import FrameSample
from samlora.data.prompts import TextPrompt, sample_text_prompts, seed_for
from samlora.data.records import Sample, SegDataset
from samlora.data.transforms import AugmentPlan
from samlora.tasks.common import DecodedImages, augment_from, frame_tensors


@dataclass
class ConceptSample:
    """One image, its objects and its text prompts (tensors at the image's resolution).

    Attributes:
        image: ``3 x H x W`` uint8.
        masks: ``K x H x W`` bool, every non-crowd object.
        category_ids: ``K`` int64.
        prompts: positives (categories present) then negatives (absent).
        crowd_masks: ``C x H x W`` crowd regions (ignored in evaluation), ``crowd_category_ids`` ``C``.
    """

    image: torch.Tensor
    masks: torch.Tensor
    category_ids: torch.Tensor
    prompts: list[TextPrompt]
    crowd_masks: torch.Tensor
    crowd_category_ids: torch.Tensor
    image_id: int | str
    file_name: str


@dataclass
class ConceptFrameItem:
    """One training image in the input frame with its step's prompts and augmentation (``K`` targets).

    Attributes:
        image: ``3 x h x w`` uint8, as cached (shrunk to fit the frame).
        labels: ``L x h x w`` label layers; target ``k`` is ``labels[layer[k]] == value[k]``.
        layer, value, category_ids: ``K`` int64 each: where the targets are, and their categories.
        prompts: positives (categories of the targets) then negatives (absent categories).
        plan: the augmentation to apply on the device.
    """

    image: torch.Tensor
    labels: torch.Tensor
    layer: torch.Tensor
    value: torch.Tensor
    category_ids: torch.Tensor
    prompts: list[TextPrompt]
    plan: AugmentPlan


def as_sample(frame: FrameSample) -> Sample:
    """A frame sample with its objects as ``K x h x w`` masks (what the CPU augmentation takes)."""
    return Sample(
        image=np.asarray(frame.image),
        masks=frame.masks(),
        category_ids=np.asarray(frame.category_ids),
        iscrowd=np.asarray(frame.iscrowd),
        ann_ids=list(frame.ann_ids),
        image_id=frame.image_id,
        file_name=frame.file_name,
    )


class ConceptDataset(Dataset):
    """Decode + augment + text prompts, per image (training or evaluation mode).

    ``images``: the training images decoded once into the model's input frame (then samples are at
    that resolution); without it every image is decoded at its own resolution.
    """

    def __init__(
        self,
        split: SegDataset,
        cfg: Config,
        train: bool,
        all_categories: bool = False,
        images: DecodedCache | None = None,
    ):
        self.split = split
        self.cfg = cfg
        self.train = train
        self.all_categories = all_categories
        self.epoch = 0
        self.augment = augment_from(cfg)
        self.use_augment = train and cfg.augment.enabled
        self.names = prompt_categories(split)  # super-categories / unannotated duplicates are no prompts
        self.decoded = DecodedImages(split, cfg) if images is None else None
        self.images = images

    def __len__(self) -> int:
        return len(self.split.images)

    @property
    def items_in_process(self) -> bool:
        """Training items from the kept decoded cache: cheaper to make than to pass between processes."""
        return self.train and self.images is not None and self.images.keep

    def _prompts(self, present: list[int], targets: list[int], rng: np.random.Generator, key: str | None):
        """Text prompts: the categories of ``targets`` as positives, negatives absent from ``present``."""
        cfg = self.cfg
        prompts = sample_text_prompts(
            present, self.names, rng, cfg.prompts.negatives_per_image,
            synonyms=cfg.prompts.synonyms or None, fixed_key=key, seed=cfg.train.seed,
        )  # fmt: skip
        return [p for p in prompts if not p.positive or p.category_id in targets]

    def _frame_item(self, index: int, rng: np.random.Generator) -> ConceptFrameItem:
        """A training image as cached, its prompts and its augmentation (nothing resampled here)."""
        frame: FrameSample = self.images[index]
        crowd = frame.iscrowd.astype(bool)
        chosen = np.flatnonzero((~crowd | self.cfg.data.include_crowd) & (frame.areas > 0))
        if self.use_augment:  # zoom and crop windows keep a pixel of a target
            plan = self.augment.plan(frame.size, frame.pixels_of, chosen, rng, frame.boxes)
        else:
            plan = AugmentPlan.identity(frame.size)
        present = sorted({int(c) for c in frame.category_ids})  # crowd categories are never negatives
        prompts = self._prompts(present, sorted({int(c) for c in frame.category_ids[chosen]}), rng, None)
        return ConceptFrameItem(**frame_tensors(frame, chosen), prompts=prompts, plan=plan)

    def __getitem__(self, index: int) -> ConceptSample | ConceptFrameItem:
        cfg = self.cfg
        rng = np.random.default_rng(
            seed_for(cfg.train.seed, "concept", self.epoch if self.train else -1, index)
        )
        if self.train and self.images is not None:
            return self._frame_item(index, rng)
        sample = self.decoded[index] if self.images is None else as_sample(self.images[index])
        if self.use_augment:
            sample = self.augment(sample, rng)
        crowd = sample.iscrowd.astype(bool)
        present = sorted({int(c) for c in sample.category_ids})  # crowd categories are never negatives
        if self.all_categories:  # evaluation: every category is queried on every image (crowd-only:
            # a positive prompt without targets, ignored by the loss and by cgF1, as COCO ignores crowds)
            prompts = [
                TextPrompt(text=self.names[c].lower(), category_id=c, positive=c in present)
                for c in sorted(self.names)
            ]
        else:
            keep_present = sorted(
                {int(c) for c, k in zip(sample.category_ids, crowd) if not k or cfg.data.include_crowd}
            )
            key = None if self.train else str(sample.image_id)
            prompts = self._prompts(present, keep_present, rng, key)
        targets = ~crowd if not (self.train and cfg.data.include_crowd) else np.ones_like(crowd)
        return ConceptSample(
            image=torch.from_numpy(np.require(sample.image, requirements=["C", "W"]))
            .permute(2, 0, 1)
            .contiguous(),
            masks=torch.from_numpy(np.require(sample.masks[targets], requirements=["C", "W"])),
            category_ids=torch.as_tensor(sample.category_ids[targets], dtype=torch.int64),
            prompts=prompts,
            crowd_masks=torch.from_numpy(np.require(sample.masks[crowd & ~targets], requirements=["C", "W"])),
            crowd_category_ids=torch.as_tensor(sample.category_ids[crowd & ~targets], dtype=torch.int64),
            image_id=sample.image_id,
            file_name=sample.file_name,
        )
