"""The concept task's step (SAM 3): (image, text) pairs, targets per pair, the set loss.

Images are encoded once per step and each distinct text once; every pair is
decoded from those. A pair's targets are all objects of its category (none for
a negative prompt), as normalised XYXY boxes and masks at the decoder's
resolution in the input frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from samlora.config import Config
from samlora.models.concept import PairOutputs, decode_pairs, encode_images, encode_texts
from samlora.models.loading import LoadedModel
from samlora.models.preprocess import Geometry, Preprocessing
from samlora.tasks.postprocess import masks_to_boxes

from .data import ConceptFrameItem, ConceptSample
from .set_loss import ConceptSetLoss


@dataclass
class PairBatch:
    """``N`` (image, text) pairs over ``B`` images on the device."""

    pixels: torch.Tensor
    geoms: list[Geometry]
    image_index: torch.Tensor
    texts: list[str]
    text_index: torch.Tensor
    category_ids: list[int]
    targets: list[dict[str, torch.Tensor]]
    ignore: list[bool]
    """Per pair: a positive prompt without targets (its category is only crowd here): no loss."""


def normalized_boxes(masks: torch.Tensor, pre: Preprocessing, geom: Geometry) -> torch.Tensor:
    """``K x 4`` XYXY boxes of ``K x H x W`` masks, normalised to [0, 1] of the input frame."""
    boxes = masks_to_boxes(masks)
    return (pre.coords(boxes, geom) / pre.image_size).clamp(0, 1)


def target_size(cfg: Config, pre: Preprocessing) -> int:
    """Side of the target masks: the decoder's resolution (``low_res``) or the model input (``input``)."""
    if cfg.loss.resolution == "original":
        raise ValueError(
            "loss.resolution 'original' is for promptable models; concept models compare masks at the decoder's "
            "resolution (low_res) or the model input size (input)"
        )
    return pre.low_res_size if cfg.loss.resolution == "low_res" else pre.image_size


def _pairs(
    images: list[tuple[torch.Tensor, torch.Tensor, list, Geometry]],
    pixels: torch.Tensor,
    pre: Preprocessing,
    mask_size: int,
    empty_positive: str,
) -> PairBatch:
    """Flatten ``(masks, category_ids, prompts, geometry)`` per image into pairs with their targets.

    ``empty_positive``: what a positive prompt without targets is: ``ignore`` (its category is only
    crowd here) or ``negative`` (an augmentation cropped its objects out: the concept is absent).
    """
    device = pixels.device
    texts: list[str] = []
    image_index, text_index, categories, targets, ignore = [], [], [], [], []
    for b, (masks, category_ids, prompts, geom) in enumerate(images):
        for prompt in prompts:
            if prompt.text not in texts:
                texts.append(prompt.text)
            image_index.append(b)
            text_index.append(texts.index(prompt.text))
            categories.append(prompt.category_id)
            chosen = masks[category_ids == prompt.category_id] if prompt.positive else masks[:0]
            targets.append(
                {
                    "boxes": normalized_boxes(chosen, pre, geom),
                    "masks": pre.masks(chosen, geom, size=mask_size) > 0.5,
                }
            )
            ignore.append(prompt.positive and len(chosen) == 0 and empty_positive == "ignore")
    return PairBatch(
        pixels=pixels,
        geoms=[g for *_, g in images],
        image_index=torch.tensor(image_index, dtype=torch.long, device=device),
        texts=texts,
        text_index=torch.tensor(text_index, dtype=torch.long, device=device),
        category_ids=categories,
        targets=targets,
        ignore=ignore,
    )


def pair_batch(
    samples: list[ConceptSample], pre: Preprocessing, device: torch.device, mask_size: int | None = None
) -> PairBatch:
    """Pairs of decoded samples at their own resolution (evaluation), masks ``mask_size`` a side."""
    images = [s.image.to(device, non_blocking=True) for s in samples]
    per_image = [
        (
            s.masks.to(device),
            s.category_ids.to(device),
            s.prompts,
            pre.geometry(int(s.image.shape[1]), int(s.image.shape[2])),
        )
        for s in samples
    ]
    return _pairs(per_image, pre.images(images, device), pre, mask_size or pre.low_res_size, "ignore")


def frame_pairs(
    items: list[ConceptFrameItem], pre: Preprocessing, device: torch.device, mask_size: int | None = None
) -> PairBatch:
    """Pairs of a training micro-batch, augmented on the device in one resampling into the input frame.

    Each target's mask comes from the warped label layers; a target the augmentation removed is
    dropped, and a positive prompt left without targets becomes a negative pair.
    """
    size = pre.frame.size
    pixels, warped = pre.warped(
        [i.image for i in items], [i.labels for i in items], [i.plan for i in items], device
    )
    geom = Geometry(size, size, size, size)
    per_image = []
    for b, item in enumerate(items):
        masks = warped.labels[b, item.layer.to(device)] == item.value.to(device)[:, None, None]  # K x S x S
        kept = masks.flatten(1).any(dim=1)
        per_image.append((masks[kept], item.category_ids.to(device)[kept], item.prompts, geom))
    return _pairs(per_image, pixels, pre, mask_size or pre.low_res_size, "negative")


class ConceptSegmenter(nn.Module):
    """One module call per step (so DDP sees it): encode images and texts once, decode all pairs."""

    def __init__(self, model: nn.Module, loaded: LoadedModel):
        super().__init__()
        self.model = model
        self.loaded = loaded

    def forward(
        self, pixels: torch.Tensor, image_index: torch.Tensor, texts: list[str], text_index: torch.Tensor
    ) -> PairOutputs:
        vision = encode_images(self.model, pixels)
        features, mask = encode_texts(self.model, self.loaded, texts, pixels.device)
        return decode_pairs(self.model, vision, image_index, features, mask, text_index)


def set_loss_from(cfg: Config) -> ConceptSetLoss:
    """SAM 3's set loss with the weights of the ``loss`` section.

    ``loss.set_class`` unset (null) takes the class loss's own default weight (20 for ``iabce``,
    2 for ``focal``); ``loss.focal_alpha``/``focal_gamma`` are the alpha/gamma of the mask focal
    loss and of the focal classification (SAM 3 and DETR both use 0.25 and 2).
    """
    lc = cfg.loss
    return ConceptSetLoss(
        weight_class=lc.set_class, class_loss=lc.set_class_loss, weight_presence=lc.set_presence,
        weight_bbox=lc.set_bbox, weight_giou=lc.set_giou, weight_mask=lc.set_mask, weight_dice=lc.set_dice,
        cost_class=lc.match_class, cost_bbox=lc.match_bbox, cost_giou=lc.match_giou,
        focal_alpha=lc.focal_alpha, focal_gamma=lc.focal_gamma,
        mask_focal_alpha=lc.focal_alpha, mask_focal_gamma=lc.focal_gamma,
        mask_loss_resolution="prediction" if lc.resolution == "low_res" else "target",
    )  # fmt: skip


def loss_of(
    loss_fn: ConceptSetLoss, out: PairOutputs, batch: PairBatch
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The set loss of decoded pairs (ignored pairs left out); ``loss`` is the weighted total.

    Call only when at least one pair is not ignored.
    """
    targets = batch.targets
    if any(batch.ignore):
        keep = [n for n, skip in enumerate(batch.ignore) if not skip]
        index = torch.tensor(keep, dtype=torch.long, device=out.logits.device)
        out = PairOutputs(out.logits[index], out.presence[index], out.boxes[index], out.masks[index])
        targets = [targets[n] for n in keep]
    outputs = {
        "pred_logits": out.logits,
        "presence_logits": out.presence[:, None],
        "pred_boxes": out.boxes,
        "pred_masks": out.masks,
    }
    total, terms = loss_fn(outputs, targets)
    terms = {k: v for k, v in terms.items() if k != "loss_total"}
    terms["loss"] = total.detach()
    return total, terms
