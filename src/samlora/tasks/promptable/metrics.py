"""Segmentation metrics of promptable masks: Dice, IoU, boundary F1, HD95.

Every metric is computed at the resolution the caller gives. Callers pass masks
at the **original image resolution** (never the model's squashed input or
low-res logits frame), so that numbers compare across models and papers.

Masks are ``H x W`` arrays (numpy or torch) of dtype bool, or integer arrays read
as ``!= 0``. Float arrays are refused: threshold logits or probabilities first.

Definitions (pixel units, no spacing):

- Dice ``2|P & T| / (|P| + |T|)`` and IoU ``|P & T| / |P | T|``; both masks empty
  gives 1.0 (nothing to find, nothing predicted: a perfect answer).
- Boundary of a mask: the mask minus its binary erosion with the 4-connected
  3 x 3 cross, pixels outside the image counting as background (so an object's
  pixels on the image border are boundary pixels). This is MedPy's surface
  (``medpy.metric.binary.__surface_distances``, connectivity 1).
- Distances between boundaries: Euclidean, from
  ``scipy.ndimage.distance_transform_edt`` of the other mask's non-boundary.
- :func:`hd95` pools both directed distance sets and takes their 95th percentile
  (``numpy.percentile``, linear interpolation), as ``medpy.metric.binary.hd95``
  does. MONAI's ``compute_hausdorff_distance(percentile=95)`` instead takes the
  larger of the two directed 95th percentiles; ``reduction="max"`` gives that.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch
from scipy import ndimage

__all__ = [
    "boundary",
    "boundary_f1",
    "dice",
    "dice_iou_batch",
    "hd95",
    "iou",
]

_CROSS = ndimage.generate_binary_structure(2, 1)


def _check_pair(pred: object, target: object) -> None:
    ps, ts = tuple(pred.shape), tuple(target.shape)  # type: ignore[attr-defined]
    if ps != ts:
        raise ValueError(f"prediction and target masks must have the same shape, got {ps} and {ts}")
    if len(ps) != 2:
        raise ValueError(f"masks must be H x W, got shape {ps}")


def _to_numpy_bool(mask: np.ndarray | torch.Tensor, name: str) -> np.ndarray:
    if isinstance(mask, torch.Tensor):
        if mask.is_floating_point() or mask.is_complex():
            raise TypeError(f"{name} must be a bool (or integer) mask, got {mask.dtype}; threshold it first")
        return mask.detach().cpu().numpy() != 0
    arr = np.asarray(mask)
    if arr.dtype == bool:
        return arr
    if not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"{name} must be a bool (or integer) mask, got {arr.dtype}; threshold it first")
    return arr != 0


def _to_torch_bool(mask: torch.Tensor, name: str) -> torch.Tensor:
    if mask.dtype == torch.bool:
        return mask
    if mask.is_floating_point() or mask.is_complex():
        raise TypeError(f"{name} must be a bool (or integer) mask, got {mask.dtype}; threshold it first")
    return mask != 0


# --------------------------------------------------------------------------- overlap


def dice_iou_batch(pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Dice and IoU of ``N`` mask pairs at once, on the tensors' device.

    Args:
        pred: ``N x H x W`` bool, predicted masks at the original image resolution.
        target: ``N x H x W`` bool, ground-truth masks, same shape and device.

    Returns:
        ``(dice, iou)``, each ``N`` float32 on the input device. A pair whose two
        masks are both empty scores 1.0 on both.
    """
    if pred.shape != target.shape:
        raise ValueError(
            f"prediction and target masks must have the same shape, got {tuple(pred.shape)} and {tuple(target.shape)}"
        )
    if pred.dim() != 3:
        raise ValueError(f"masks must be N x H x W, got shape {tuple(pred.shape)}")
    p = _to_torch_bool(pred, "pred").flatten(1)
    t = _to_torch_bool(target, "target").flatten(1)
    inter = (p & t).sum(1, dtype=torch.int64)
    total = p.sum(1, dtype=torch.int64) + t.sum(1, dtype=torch.int64)
    union = total - inter
    empty = total == 0
    one = torch.ones((), dtype=torch.float32, device=p.device)
    dice_v = torch.where(empty, one, 2 * inter.float() / total.clamp(min=1).float())
    iou_v = torch.where(empty, one, inter.float() / union.clamp(min=1).float())
    return dice_v, iou_v


def _overlap(pred: np.ndarray | torch.Tensor, target: np.ndarray | torch.Tensor) -> tuple[float, float]:
    _check_pair(pred, target)
    if isinstance(pred, torch.Tensor) and isinstance(target, torch.Tensor):
        d, i = dice_iou_batch(pred[None], target[None].to(pred.device))
        return float(d[0]), float(i[0])
    p, t = _to_numpy_bool(pred, "pred"), _to_numpy_bool(target, "target")
    inter = int(np.count_nonzero(p & t))
    total = int(np.count_nonzero(p)) + int(np.count_nonzero(t))
    if total == 0:
        return 1.0, 1.0
    return 2.0 * inter / total, inter / (total - inter)


def dice(pred: np.ndarray | torch.Tensor, target: np.ndarray | torch.Tensor) -> float:
    """Dice ``2|P & T| / (|P| + |T|)`` of two ``H x W`` masks (original resolution).

    Both masks empty gives 1.0; exactly one empty gives 0.0.
    """
    return _overlap(pred, target)[0]


def iou(pred: np.ndarray | torch.Tensor, target: np.ndarray | torch.Tensor) -> float:
    """IoU (Jaccard) ``|P & T| / |P | T|`` of two ``H x W`` masks (original resolution).

    Both masks empty gives 1.0; exactly one empty gives 0.0.
    """
    return _overlap(pred, target)[1]


# --------------------------------------------------------------------------- boundaries


def boundary(mask: np.ndarray | torch.Tensor) -> np.ndarray:
    """``H x W`` bool boundary of a mask: the mask minus its erosion by the 3 x 3 cross.

    Pixels outside the image count as background, so foreground pixels on the
    image border are boundary pixels (MedPy's convention). A non-empty mask always
    has a non-empty boundary.
    """
    m = _to_numpy_bool(mask, "mask")
    return m & ~ndimage.binary_erosion(m, structure=_CROSS, border_value=0)


def _boundary_distances(
    pred: np.ndarray | torch.Tensor, target: np.ndarray | torch.Tensor
) -> tuple[np.ndarray, np.ndarray] | None:
    """Distances pred-boundary -> target-boundary and back, or ``None`` if either mask is empty.

    Work is cropped to the bounding box of ``pred | target``: both masks are empty
    outside it, so the boundaries and their distances are those of the full image.
    """
    _check_pair(pred, target)
    p, t = _to_numpy_bool(pred, "pred"), _to_numpy_bool(target, "target")
    if not p.any() or not t.any():
        return None
    rows = np.flatnonzero((p | t).any(1))
    cols = np.flatnonzero((p | t).any(0))
    box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    bp, bt = boundary(p[box]), boundary(t[box])
    to_target = ndimage.distance_transform_edt(~bt)[bp]
    to_pred = ndimage.distance_transform_edt(~bp)[bt]
    return to_target, to_pred


def boundary_f1(
    pred: np.ndarray | torch.Tensor, target: np.ndarray | torch.Tensor, tolerance_px: float = 2.0
) -> float:
    """Boundary F1 of two ``H x W`` masks (original resolution), with a pixel tolerance.

    Precision is the fraction of predicted boundary pixels (see :func:`boundary`)
    within ``tolerance_px`` (Euclidean, inclusive) of a ground-truth boundary pixel;
    recall is the fraction of ground-truth boundary pixels within ``tolerance_px``
    of a predicted one; the score is ``2PR / (P + R)`` (0.0 when both are 0). This
    is the contour F-measure of DAVIS (Perazzi et al. 2016) with the tolerance given
    in pixels. Both masks empty gives 1.0; exactly one empty gives 0.0.
    """
    if tolerance_px < 0:
        raise ValueError(f"tolerance_px must be >= 0, got {tolerance_px}")
    dists = _boundary_distances(pred, target)
    if dists is None:
        p_any = bool(_to_numpy_bool(pred, "pred").any())
        t_any = bool(_to_numpy_bool(target, "target").any())
        return 1.0 if not (p_any or t_any) else 0.0
    to_target, to_pred = dists
    precision = float(np.mean(to_target <= tolerance_px))
    recall = float(np.mean(to_pred <= tolerance_px))
    if precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


def hd95(
    pred: np.ndarray | torch.Tensor,
    target: np.ndarray | torch.Tensor,
    reduction: Literal["pooled", "max"] = "pooled",
) -> float:
    """95th-percentile symmetric Hausdorff distance in pixels between two masks' boundaries.

    Masks are ``H x W`` at the original image resolution. With ``d(A, B)`` the
    distance of every boundary pixel of ``A`` to the nearest boundary pixel of
    ``B``: ``reduction="pooled"`` (default) gives
    ``percentile(concat(d(P, T), d(T, P)), 95)`` as MedPy's ``hd95``;
    ``reduction="max"`` gives ``max(percentile(d(P, T), 95), percentile(d(T, P), 95))``
    as MONAI's ``compute_hausdorff_distance(percentile=95)``.

    Empty masks: if either mask is empty the distance is undefined and ``nan`` is
    returned (both empty included). :func:`mean_ci` and :func:`summarize` leave
    nan out of the mean and report how many there were, so report them beside
    the mean rather than averaging a made-up penalty in (the eval report lists the counts).
    """
    if reduction not in ("pooled", "max"):
        raise ValueError(f"reduction must be 'pooled' or 'max', got {reduction!r}")
    dists = _boundary_distances(pred, target)
    if dists is None:
        return math.nan
    to_target, to_pred = dists
    if reduction == "pooled":
        return float(np.percentile(np.concatenate([to_target, to_pred]), 95))
    return float(max(np.percentile(to_target, 95), np.percentile(to_pred, 95)))
