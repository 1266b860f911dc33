"""One-to-one Hungarian matching of SAM 3 query predictions to ground-truth instances.

This follows SAM 3's own matcher, ``BinaryHungarianMatcherV2(focal=True, stable=False)`` in
``facebookresearch/sam3: sam3/train/matcher.py``, configured in
``sam3/train/configs/roboflow_v100/roboflow_v100_full_ft_100_images.yaml`` (``scratch.matcher``) with
``cost_class=2.0, cost_bbox=5.0, cost_giou=2.0, alpha=0.25, gamma=2``. For one (image, text prompt)
pair with ``Q`` queries and ``K`` ground-truth objects the cost matrix is ``Q x K``::

    p = sigmoid(pred_logit)                                   # one class: "is the prompted concept"
    cost_class = -alpha (1-p)^gamma log(p) + (1-alpha) p^gamma log(1-p)   # focal pos - focal neg
    cost_bbox  = || cxcywh(pred) - cxcywh(gt) ||_1             # L1 on centre/size, as SAM 3's box head
    cost_giou  = -GIoU(xyxy(pred), xyxy(gt))
    C = cost_class * cost_class + cost_bbox * cost_bbox + cost_giou * cost_giou

SAM 3's class cost depends on the query only (it is a binary "matches the prompt" score), so it ranks
queries but is the same for every ground-truth column. SAM 3 does not use mask costs; the optional
Mask2Former-style costs (pixel-mean sigmoid BCE and Dice, computed at the prediction's resolution with
ground truth area-resized to it) are off by default. Prompts without objects (``K == 0``) get empty
matches, as with SAM 3's ``remove_samples_with_0_gt=True``.

SAM 3 also trains one-to-many (DAC-DETR) queries and auxiliary decoder layers; the transformers
``Sam3Model`` returns only the final one-to-one predictions, so only that matching is provided here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment
from torch import Tensor

from .boxes import box_xyxy_to_cxcywh, generalized_box_iou

__all__ = ["hungarian_match", "match_batch", "matching_cost", "output_field", "resize_masks"]


def resize_masks(masks: Tensor, size: tuple[int, int]) -> Tensor:
    """Resize binary masks ``K x H x W`` (bool or float) to ``K x h x w`` float32 in [0, 1].

    Shrinking uses area averaging, so each output value is the fraction of that low-resolution
    pixel covered by the mask (a soft target that keeps thin objects); enlarging is bilinear.
    Masks already of size ``h x w`` are returned as float32 unchanged.
    """
    masks = masks.to(torch.float32)
    if masks.shape[0] == 0:
        return masks.new_zeros((0, *size))
    if tuple(masks.shape[-2:]) == tuple(size):
        return masks
    if masks.shape[-2] >= size[0] and masks.shape[-1] >= size[1]:
        return F.adaptive_avg_pool2d(masks[:, None], size)[:, 0]
    return F.interpolate(masks[:, None], size=size, mode="bilinear", align_corners=False)[:, 0].clamp(0, 1)


def _class_cost(logits: Tensor, alpha: float, gamma: float) -> Tensor:
    """Focal matching cost per query (``Q`` -> ``Q``), computed with log-sigmoid for stability."""
    prob = logits.sigmoid()
    return -alpha * (1 - prob) ** gamma * F.logsigmoid(logits) + (1 - alpha) * prob**gamma * F.logsigmoid(
        -logits
    )


def _mask_costs(pred_masks: Tensor, gt_masks: Tensor) -> tuple[Tensor, Tensor]:
    """Pairwise mean sigmoid-BCE and Dice costs: ``Q x h x w`` logits, ``K x H x W`` -> two ``Q x K``."""
    target = resize_masks(gt_masks, tuple(pred_masks.shape[-2:])).flatten(1)  # K x hw
    logits = pred_masks.flatten(1)  # Q x hw
    hw = logits.shape[1]
    pos, neg = F.softplus(-logits), F.softplus(logits)  # BCE against 1 and against 0
    cost_bce = (pos @ target.T + neg @ (1 - target).T) / hw
    prob = logits.sigmoid()
    numerator = 2 * prob @ target.T
    denominator = prob.sum(-1)[:, None] + target.sum(-1)[None, :]
    cost_dice = 1 - (numerator + 1) / (denominator + 1)
    return cost_bce, cost_dice


@torch.no_grad()
def matching_cost(
    pred_logits: Tensor,
    pred_boxes: Tensor,
    gt_boxes: Tensor,
    cost_class: float = 2.0,
    cost_bbox: float = 5.0,
    cost_giou: float = 2.0,
    *,
    cost_mask: float = 0.0,
    cost_dice: float = 0.0,
    pred_masks: Tensor | None = None,
    gt_masks: Tensor | None = None,
    focal_alpha: float = 0.25,
    focal_gamma: float = 2.0,
) -> Tensor:
    """The ``Q x K`` float32 matching cost for one (image, prompt) pair (lower is better).

    Args:
        pred_logits: ``Q`` (or ``Q x 1``) classification logits.
        pred_boxes: ``Q x 4`` predicted boxes, normalised XYXY.
        gt_boxes: ``K x 4`` ground-truth boxes, normalised XYXY.
        cost_class, cost_bbox, cost_giou: weights of the focal, L1 (CXCYWH) and -GIoU costs.
        cost_mask, cost_dice: weights of the optional mask costs (need ``pred_masks``/``gt_masks``).
        pred_masks: ``Q x h x w`` mask logits. gt_masks: ``K x H x W`` bool masks.
        focal_alpha, focal_gamma: focal parameters of the class cost.
    """
    logits = pred_logits.reshape(-1).float()
    boxes = pred_boxes.float()
    gt = gt_boxes.to(device=boxes.device, dtype=torch.float32)
    if boxes.shape != (logits.shape[0], 4) or gt.ndim != 2 or gt.shape[1] != 4:
        raise ValueError(
            f"expected pred_logits Q, pred_boxes Q x 4 and gt_boxes K x 4; got {tuple(pred_logits.shape)}, "
            f"{tuple(pred_boxes.shape)} and {tuple(gt_boxes.shape)}"
        )
    cost = cost_class * _class_cost(logits, focal_alpha, focal_gamma)[:, None]
    cost = cost + cost_bbox * torch.cdist(box_xyxy_to_cxcywh(boxes), box_xyxy_to_cxcywh(gt), p=1)
    cost = cost - cost_giou * generalized_box_iou(boxes, gt)
    if cost_mask or cost_dice:
        if pred_masks is None or gt_masks is None:
            raise ValueError("cost_mask/cost_dice need both pred_masks (Q x h x w) and gt_masks (K x H x W)")
        bce, dice = _mask_costs(pred_masks.float(), gt_masks.to(pred_masks.device))
        cost = cost + cost_mask * bce + cost_dice * dice
    return cost


def hungarian_match(
    pred_logits: Tensor, pred_boxes: Tensor, gt_boxes: Tensor, *weights: float, **costs: Any
) -> tuple[Tensor, Tensor]:
    """Minimum-cost one-to-one assignment of queries to ground-truth objects for one pair.

    Arguments are those of :func:`matching_cost` (``weights``: its cost weights by position). Returns ``(pred_idx, gt_idx)``, two int64 tensors
    of length ``min(Q, K)`` on ``pred_logits``' device, sorted by ``gt_idx``; unmatched queries are
    "no object". ``K == 0`` gives two empty tensors.

    Raises:
        ValueError: the cost matrix holds NaN/Inf (the predictions are not finite, e.g. after the
            training diverged), or the shapes are wrong.
    """
    device = pred_logits.device
    n_gt = gt_boxes.shape[0]
    if n_gt == 0 or pred_logits.numel() == 0:
        empty = torch.empty(0, dtype=torch.int64, device=device)
        return empty, empty.clone()
    cost = matching_cost(pred_logits, pred_boxes, gt_boxes, *weights, **costs)
    cost_np = cost.cpu().numpy().astype(np.float64)
    if not np.isfinite(cost_np).all():
        raise ValueError(
            "the Hungarian matching cost is not finite: the model's pred_logits/pred_boxes/pred_masks "
            "contain NaN or Inf (has the training diverged? try a lower learning rate or gradient clipping)"
        )
    rows, cols = linear_sum_assignment(cost_np)
    order = np.argsort(cols, kind="stable")
    pred_idx = torch.as_tensor(rows[order], dtype=torch.int64, device=device)
    gt_idx = torch.as_tensor(cols[order], dtype=torch.int64, device=device)
    return pred_idx, gt_idx


def output_field(outputs: Mapping[str, Any] | Any, name: str) -> Tensor | None:
    """Read ``name`` from a dict or a transformers ``ModelOutput`` (missing -> None)."""
    if isinstance(outputs, Mapping):
        return outputs.get(name)
    return getattr(outputs, name, None)


def match_batch(
    outputs: Mapping[str, Any] | Any,
    targets: Sequence[Mapping[str, Tensor]],
    **costs: float,
) -> list[tuple[Tensor, Tensor]]:
    """Match every (image, prompt) pair of a batch.

    Args:
        outputs: ``Sam3Model`` outputs (or a dict) with ``pred_logits`` N x Q, ``pred_boxes`` N x Q x 4
            (normalised XYXY) and, when mask costs are used, ``pred_masks`` N x Q x h x w logits.
        targets: N dicts with ``"boxes"`` K x 4 normalised XYXY and optionally ``"masks"`` K x H x W
            bool; ``K`` may be 0 (a negative prompt).
        **costs: keyword arguments of :func:`hungarian_match` (``cost_class``, ``cost_bbox``,
            ``cost_giou``, ``cost_mask``, ``cost_dice``, ``focal_alpha``, ``focal_gamma``).

    Returns:
        N tuples ``(pred_idx, gt_idx)`` as returned by :func:`hungarian_match`.
    """
    pred_logits, pred_boxes = output_field(outputs, "pred_logits"), output_field(outputs, "pred_boxes")
    if pred_logits is None or pred_boxes is None:
        raise ValueError("outputs need 'pred_logits' (N x Q) and 'pred_boxes' (N x Q x 4)")
    if len(targets) != pred_logits.shape[0]:
        raise ValueError(f"got {len(targets)} targets for {pred_logits.shape[0]} (image, prompt) pairs")
    use_masks = bool(costs.get("cost_mask", 0.0) or costs.get("cost_dice", 0.0))
    pred_masks = output_field(outputs, "pred_masks") if use_masks else None
    if use_masks and pred_masks is None:
        raise ValueError("mask costs are on but outputs have no 'pred_masks'")
    matches = []
    for i, target in enumerate(targets):
        gt_masks = target.get("masks") if use_masks else None
        if use_masks and gt_masks is None and target["boxes"].shape[0] > 0:
            raise ValueError(f"mask costs are on but target {i} has no 'masks' (K x H x W bool)")
        matches.append(
            hungarian_match(
                pred_logits[i],
                pred_boxes[i],
                target["boxes"],
                pred_masks=pred_masks[i] if pred_masks is not None else None,
                gt_masks=gt_masks,
                **costs,
            )
        )
    return matches
