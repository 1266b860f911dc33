"""Iterative correction clicks, batched on the training device (SAM 2 / micro-sam style training).

Given each object's current predicted mask and its ground truth, one click is
placed in an error region: a positive click (label 1) in the false negatives
(object pixels the prediction misses) or a negative click (label 0) in the
false positives (background pixels it covers). An object predicted perfectly
gets a padding point ``(0, 0)`` with label :data:`PAD_LABEL` (``-10``, which the
``transformers`` SAM prompt encoders treat as "ignore this point").

Coordinates follow :mod:`samlora.data.prompts`: ``XY`` pixel centres of the
masks' own grid, pixel ``(row r, column c)`` -> ``(c + 0.5, r + 0.5)``; to use
them at another resolution multiply by the scale.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch

from .prompts import farthest_interior_point

__all__ = ["PAD_LABEL", "correction_clicks"]

PAD_LABEL = -10
"""Label of a padding point (no error to correct)."""


def correction_clicks(
    pred_masks: torch.Tensor,
    gt_masks: torch.Tensor,
    generator: torch.Generator | None = None,
    mode: Literal["random", "center"] = "random",
    ignore: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One correction click per object.

    Args:
        pred_masks: ``N x H x W`` current predictions (bool, or anything where
            non-zero means foreground).
        gt_masks: ``N x H x W`` ground truth, same shape (moved to
            ``pred_masks``' device).
        generator: random source for ``mode="random"``; it may live on the CPU
            or on the masks' device. ``None`` uses torch's global generator.
        mode: ``"random"`` (default, training, as SAM 2 and micro-sam train):
            click in the error region with more pixels (false negatives on a
            tie), at a pixel drawn uniformly from it; fully batched with a
            cumulative-sum search, no loop over objects. ``"center"``
            (evaluation, the RITM / SAM 2 interactive protocol; deterministic,
            ``generator`` unused): click at the error pixel farthest from the
            error region's boundary (image border included), in whichever of the
            two regions has the larger such distance (false negatives on a tie);
            loops over objects on the CPU for the distance transform.
        ignore: ``H x W`` or ``N x H x W`` bool pixels that are neither object
            nor background (COCO crowd regions): never clicked, errors there
            do not count. ``None``: every pixel counts.

    Returns:
        ``points``: ``N x 1 x 2`` float32 ``XY`` pixel centres, and
        ``labels``: ``N x 1`` int64 (1 in a false negative, 0 in a false
        positive, :data:`PAD_LABEL` with point ``(0, 0)`` when there is no
        error), both on ``pred_masks``' device.
    """
    if pred_masks.dim() != 3 or tuple(pred_masks.shape) != tuple(gt_masks.shape):
        raise ValueError(
            "correction_clicks: pred_masks and gt_masks must both be N x H x W, got "
            f"{tuple(pred_masks.shape)} and {tuple(gt_masks.shape)}"
        )
    if mode not in ("random", "center"):
        raise ValueError(f"correction_clicks: mode must be 'random' or 'center', got '{mode}'")
    device = pred_masks.device
    pred = pred_masks.bool()
    gt = gt_masks.to(device).bool()
    fn = gt & ~pred
    fp = pred & ~gt
    if ignore is not None:
        keep = ~ignore.to(device).bool()
        fn, fp = fn & keep, fp & keep
    n, h, w = pred.shape
    if n == 0 or h * w == 0:
        return torch.zeros(n, 1, 2, device=device), torch.full(
            (n, 1), PAD_LABEL, dtype=torch.int64, device=device
        )
    if mode == "random":
        positive, index, has_error = _random_clicks(fn, fp, generator)
    else:
        positive, index, has_error = _center_clicks(fn, fp)
    xy = torch.stack([index % w, torch.div(index, w, rounding_mode="floor")], dim=-1).float() + 0.5
    points = torch.where(has_error[:, None], xy, torch.zeros_like(xy))[:, None]
    labels = torch.where(has_error, positive.long(), torch.full_like(positive, PAD_LABEL, dtype=torch.int64))
    return points, labels[:, None]


def _random_clicks(
    fn: torch.Tensor, fp: torch.Tensor, generator: torch.Generator | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(positive N bool, flat pixel index N int64, has_error N bool)`` by area and uniform draw."""
    fn_flat, fp_flat = fn.flatten(1), fp.flatten(1)
    fn_count, fp_count = fn_flat.sum(1), fp_flat.sum(1)
    positive = fn_count >= fp_count
    count = torch.where(positive, fn_count, fp_count)
    region = torch.where(positive[:, None], fn_flat, fp_flat)
    cumulative = torch.cumsum(region, dim=1, dtype=torch.int32)
    draw_device = generator.device if generator is not None else fn.device
    u = torch.rand(fn.shape[0], generator=generator, device=draw_device).to(fn.device)
    # k-th pixel of the region (0-based, uniform), found as the first position whose running count is k + 1.
    k = torch.minimum((u * count.float()).long(), (count - 1).clamp(min=0))
    index = torch.searchsorted(cumulative, (k + 1).to(torch.int32)[:, None]).squeeze(1)
    index = index.clamp(max=region.shape[1] - 1)
    return positive, index.long(), count > 0


def _center_clicks(fn: torch.Tensor, fp: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(positive, flat index, has_error)`` at the deepest error pixel, per object on the CPU."""
    n, _, w = fn.shape
    positive = torch.zeros(n, dtype=torch.bool)
    index = torch.zeros(n, dtype=torch.int64)
    has_error = torch.zeros(n, dtype=torch.bool)
    fn_np, fp_np = fn.cpu().numpy(), fp.cpu().numpy()
    for i in range(n):
        best: tuple[float, bool, np.ndarray] | None = None
        for is_positive, region in ((True, fn_np[i]), (False, fp_np[i])):
            if not region.any():
                continue
            xy, dist = farthest_interior_point(region)
            if best is None or dist > best[0]:
                best = (dist, is_positive, xy)
        if best is not None:
            has_error[i] = True
            positive[i] = best[1]
            col, row = int(best[2][0]), int(best[2][1])
            index[i] = row * w + col
    device = fn.device
    return positive.to(device), index.to(device), has_error.to(device)
