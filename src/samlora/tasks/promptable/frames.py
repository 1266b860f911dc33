"""A training batch made on the device from :class:`FrameItem` s: augment, masks, boxes, points.

Everything per pixel runs batched on the model's device with no read-back to the host: the
augmentation (:meth:`Preprocessing.warped`), each chosen object's mask in the input
frame (from the warped label layers), its tight box (jittered with the item's noise), and its
points, drawn by inverse-CDF sampling with the item's uniform draws:

- positives: uniform over the object's pixels;
- negatives: uniform over the band of pixels off the object within ``negative_margin_px``
  (a square neighbourhood; pixels of the original image, scaled into the frame) of it, else
  anywhere off it in the image.

Objects an augmentation removed entirely (a crop that missed them) stay in the batch with
``valid`` false: the loss ignores them (shapes never depend on the data, so nothing syncs).
Coordinates are pixels of the input frame; the batch's geometries are the identity.
"""

from __future__ import annotations

import torch

from samlora.config import Config
from samlora.models.preprocess import Geometry, Preprocessing
from samlora.tasks.postprocess import masks_to_boxes

from .data import PAD_LABEL, FrameItem
from .segmenter import DeviceBatch

NEGATIVE_MARGIN_PX = 20.0
"""Negative points lie within this many pixels (of the original image) of their object."""


def frame_batch(
    items: list[FrameItem], pre: Preprocessing, cfg: Config, device: torch.device, points: bool = True
) -> DeviceBatch:
    """The :class:`DeviceBatch` of a training micro-batch (``points=False`` skips point sampling)."""
    size = pre.frame.size
    pixels, warped = pre.warped(
        [i.image for i in items], [i.labels for i in items], [i.plan for i in items], device
    )
    counts = [i.num_objects for i in items]
    image_index = torch.repeat_interleave(torch.arange(len(items)), torch.tensor(counts, dtype=torch.long))
    layer = torch.cat([i.layer for i in items]).to(device)
    value = torch.cat([i.value for i in items]).to(device)
    image_index = image_index.to(device)
    masks = warped.labels[image_index, layer] == value[:, None, None]  # N x S x S
    valid = masks.flatten(1).any(dim=1)
    exact = masks_to_boxes(masks)
    bounds = torch.tensor(
        [[rw, rh, rw, rh] for rh, rw in warped.extent], device=device, dtype=torch.float32
    ).index_select(0, image_index)
    px = torch.tensor([i.pixel_scale * s for i, s in zip(items, warped.scale)], device=device).index_select(
        0, image_index
    )
    pr = cfg.prompts
    boxes = _jitter(
        exact, torch.cat([i.jitter for i in items]).to(device), pr.box_jitter, pr.box_jitter_max_px * px
    )
    boxes = torch.minimum(boxes, bounds)
    n = int(image_index.numel())
    width = max((i.point_labels.shape[1] for i in items), default=0)
    if points and n:
        draws = torch.cat([i.point_draws for i in items]).to(device)
        labels = torch.cat([i.point_labels for i in items]).to(device)
        region = warped.region.index_select(0, image_index)
        margin = max(1, round(NEGATIVE_MARGIN_PX * float(px.mean())))
        xy, found = _sample_points(masks, region, draws, labels, margin)
        labels = torch.where(found, labels, torch.full_like(labels, PAD_LABEL))
    else:
        xy = torch.zeros(n, width, 2, device=device)
        labels = torch.full((n, width), PAD_LABEL, device=device, dtype=torch.long)
    return DeviceBatch(
        pixels=pixels,
        geoms=[Geometry(size, size, size, size)] * len(items),
        image_index=image_index,
        masks=list(masks.split(counts)),
        boxes=boxes,
        exact_boxes=exact,
        points=xy,
        labels=labels,
        centers=torch.zeros(n, 1, 2, device=device),
        valid=valid,
    )


def _jitter(boxes: torch.Tensor, noise: torch.Tensor, fraction: float, max_px: torch.Tensor) -> torch.Tensor:
    """:func:`samlora.data.prompts.jitter_box` for ``N x 4`` boxes, with ``N x 4`` noise in ``[-1, 1]``."""
    size = torch.stack([boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]], dim=1).repeat(1, 2)
    bound = torch.minimum(fraction * size, max_px[:, None])
    move = noise * bound
    inward = (size[:, :2] - 1.0).clamp(min=0) / 2.0
    out = boxes + torch.cat([torch.minimum(move[:, :2], inward), torch.maximum(move[:, 2:], -inward)], dim=1)
    return out.clamp(min=0.0)


def dilate(masks: torch.Tensor, margin: int) -> torch.Tensor:
    """``N x S x S`` bool masks grown by ``margin`` pixels in a square neighbourhood (``max_pool2d``
    with a ``2 margin + 1`` kernel, exactly).

    The square is a row segment swept along a column segment, and a segment of radius ``r`` grows
    to ``r + s`` (``s <= r + 1``) by OR-ing two copies shifted by ``+-s``: ``O(log margin)`` boolean
    passes per axis, where pooling compares ``(2 margin + 1)^2`` pixels for every output pixel.
    """
    out = masks.clone()
    for dim in (-1, -2):
        size, radius = out.shape[dim], 0
        while radius < margin:
            step = min(radius + 1, margin - radius)
            if step < size:
                grown = out.clone()
                grown.narrow(dim, step, size - step).logical_or_(out.narrow(dim, 0, size - step))
                grown.narrow(dim, 0, size - step).logical_or_(out.narrow(dim, step, size - step))
                out = grown
            radius += step
    return out


def _sample_points(
    masks: torch.Tensor, region: torch.Tensor, draws: torch.Tensor, labels: torch.Tensor, margin: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """``N x P x 2`` pixel centres (positives from the mask, negatives near it) and ``N x P`` found."""
    n, size = masks.shape[0], masks.shape[-1]
    grown = dilate(masks, margin)
    band = grown & ~masks & region
    off = ~masks & region
    band = torch.where(band.flatten(1).any(dim=1)[:, None, None], band, off)
    xy = torch.zeros(n, labels.shape[1], 2, device=masks.device)
    found = torch.zeros_like(labels, dtype=torch.bool)
    for wanted, where in ((1, masks), (0, band)):
        cdf = where.flatten(1).cumsum(dim=1, dtype=torch.int32)  # N x S*S
        count = cdf[:, -1:]
        rank = (draws * count).long().clamp(max=count.clamp(min=1) - 1) + 1  # N x P, 1-based
        pick = torch.searchsorted(cdf, rank.to(torch.int32), right=False).clamp(max=size * size - 1)
        here = (labels == wanted) & (count > 0)
        point = torch.stack([pick % size, pick // size], dim=-1).float() + 0.5
        xy = torch.where(here[..., None], point, xy)
        found |= here
    return xy, found
