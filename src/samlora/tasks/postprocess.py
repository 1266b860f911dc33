"""Instance post-processing shared by ``predict`` and ``eval``: one code path, one set of thresholds.

Order: score threshold -> minimum area (whole instances, then the specks of kept ones) -> hole filling -> NMS (mask or box IoU)
-> optional merging of overlapping segments of one class -> top-k. Mask IoUs
are computed on masks shrunk to at most ``iou_size`` pixels a side, which keeps
NMS cheap at any image size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage


@dataclass(frozen=True)
class PostProcess:
    """Settings of :func:`postprocess` (``predict`` flags and ``eval`` keys map onto these).

    ``min_area`` drops instances smaller than it (pixels) and, unless ``keep_specks``, also removes the
    connected pieces smaller than it from the masks kept (an instance left empty is dropped).
    """

    threshold: float = 0.5
    mask_threshold: float = 0.0
    nms_iou: float = 0.5
    nms_kind: str = "mask"
    top_k: int = 100
    min_area: int = 0
    keep_specks: bool = False
    fill_holes: bool = False
    merge: bool = False
    merge_overlap: float = 0.1
    iou_size: int = 256


def mask_iou_matrix(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``K x L`` IoU between ``K x H x W`` and ``L x H x W`` bool masks."""
    fa, fb = a.flatten(1).float(), b.flatten(1).float()
    inter = fa @ fb.T
    union = fa.sum(1, keepdim=True) + fb.sum(1)[None] - inter
    return inter / union.clamp(min=1.0)


def box_iou_matrix(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``K x L`` IoU of XYXY boxes."""
    lt = torch.maximum(a[:, None, :2], b[None, :, :2])
    rb = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area_a = (a[:, 2:] - a[:, :2]).clamp(min=0).prod(-1)
    area_b = (b[:, 2:] - b[:, :2]).clamp(min=0).prod(-1)
    return inter / (area_a[:, None] + area_b[None] - inter).clamp(min=1e-9)


def masks_to_boxes(masks: torch.Tensor) -> torch.Tensor:
    """``K x 4`` XYXY boxes of ``K x H x W`` masks (``x2``/``y2`` exclusive, COCO-like); zeros for empty masks."""
    if masks.shape[0] == 0:
        return torch.zeros(0, 4, device=masks.device)
    return boxes_from_projections(masks.any(2), masks.any(1))


def boxes_from_projections(rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """:func:`masks_to_boxes` from ``K x H`` rows and ``K x W`` columns that hold a pixel (one pass
    over the masks gives both, and whether each mask is empty: ``rows.any(1)``)."""
    h, w = rows.shape[1], cols.shape[1]
    ar_y = torch.arange(h, device=rows.device)
    ar_x = torch.arange(w, device=rows.device)
    y1 = torch.where(rows, ar_y, h).min(1).values
    y2 = torch.where(rows, ar_y, -1).max(1).values
    x1 = torch.where(cols, ar_x, w).min(1).values
    x2 = torch.where(cols, ar_x, -1).max(1).values
    boxes = torch.stack([x1, y1, x2 + 1, y2 + 1], 1).float()
    return torch.where(rows.any(1)[:, None], boxes, torch.zeros_like(boxes))


def _small(masks: torch.Tensor, size: int) -> torch.Tensor:
    h, w = masks.shape[-2:]
    if max(h, w) <= size:
        return masks
    scale = size / max(h, w)
    return (
        F.interpolate(
            masks[:, None].float(), size=(max(1, round(h * scale)), max(1, round(w * scale))), mode="area"
        )[:, 0]
        > 0.5
    )


def nms(scores: torch.Tensor, iou: torch.Tensor, threshold: float) -> torch.Tensor:
    """Greedy NMS over a precomputed ``K x K`` IoU matrix; returns kept indices by descending score."""
    order = scores.argsort(descending=True)
    suppressed = torch.zeros(len(scores), dtype=torch.bool, device=scores.device)
    keep = []
    for i in order.tolist():
        if suppressed[i]:
            continue
        keep.append(i)
        suppressed |= iou[i] > threshold
    return torch.tensor(keep, dtype=torch.long, device=scores.device)


def merge_overlapping(
    masks: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor, overlap: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Union segments of one label whose intersection covers ``overlap`` of the smaller one (transitively)."""
    n = masks.shape[0]
    if n < 2:
        return masks, scores, labels
    flat = masks.flatten(1).float()
    inter = flat @ flat.T
    area = flat.sum(1)
    smaller = torch.minimum(area[:, None], area[None]).clamp(min=1.0)
    linked = ((inter / smaller) >= overlap) & (labels[:, None] == labels[None])
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in linked.nonzero().tolist():
        if i < j:
            parent[find(i)] = find(j)
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(find(i), []).append(i)
    merged = [masks[g].any(0) for g in groups.values()]
    return (
        torch.stack(merged),
        torch.stack([scores[g].max() for g in groups.values()]),
        torch.stack([labels[g[0]] for g in groups.values()]),
    )


_IN_PLANE = np.zeros((3, 3, 3), dtype=bool)  # 4-connected within a mask, never across masks
_IN_PLANE[1] = ndimage.generate_binary_structure(2, 1)
_IN_PLANE_8 = np.zeros((3, 3, 3), dtype=bool)  # 8-connected within a mask
_IN_PLANE_8[1] = True


def remove_specks(masks: torch.Tensor, min_area: int) -> torch.Tensor:
    """``K x H x W`` bool masks without their 8-connected pieces smaller than ``min_area`` pixels
    (same device); all masks labelled in one call, as a stack whose slices never connect."""
    if not len(masks):
        return masks
    labels, n = ndimage.label(masks.cpu().numpy(), structure=_IN_PLANE_8)
    keep = np.bincount(labels.ravel(), minlength=n + 1) >= min_area
    keep[0] = False
    return torch.from_numpy(keep[labels]).to(masks.device)


def min_area_filter(masks: torch.Tensor, settings: PostProcess) -> tuple[torch.Tensor, torch.Tensor]:
    """``settings.min_area`` on ``K x H x W`` bool masks: the masks with their specks removed (unless
    ``keep_specks``) and a ``K`` bool vector of those to keep (at least ``min_area`` pixels before, not empty
    after). Shared by every prompt kind (``postprocess`` and the promptable predictor)."""
    keep = masks.flatten(1).sum(1) >= max(settings.min_area, 1)
    if settings.min_area > 1 and not settings.keep_specks and bool(keep.any()):
        cleaned = masks.clone()
        cleaned[keep] = remove_specks(masks[keep], settings.min_area)
        masks, keep = cleaned, keep & cleaned.flatten(1).any(1)
    return masks, keep


def fill_holes(masks: torch.Tensor) -> torch.Tensor:
    """``K x H x W`` bool masks with their enclosed holes filled (same device), all in one call.

    The masks are stacked between two empty slices and filled with an in-plane structure, so a
    hole is background not 4-connected to its own mask's image border (as per mask).
    """
    if not len(masks):
        return masks
    stack = np.pad(masks.cpu().numpy(), ((1, 1), (0, 0), (0, 0)))
    filled = ndimage.binary_fill_holes(stack, structure=_IN_PLANE)[1:-1]
    return torch.from_numpy(np.ascontiguousarray(filled)).to(masks.device)


def postprocess(
    masks: torch.Tensor,
    scores: torch.Tensor,
    labels: torch.Tensor | None,
    settings: PostProcess,
    boxes: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Filter ``K x H x W`` bool instance masks with their ``K`` scores and labels.

    Empty masks are never kept (an empty mask is no detection); ``top_k`` counts
    per label (per prompt or class), as eval counts per (image, category).
    Returns ``(masks, scores, labels, boxes)`` kept, by descending score, boxes
    XYXY in the masks' pixels (recomputed from the final masks).
    """
    labels = (
        labels if labels is not None else torch.zeros(len(scores), dtype=torch.long, device=scores.device)
    )
    keep = (scores >= settings.threshold) & masks.flatten(1).any(1)
    masks, scores, labels = masks[keep], scores[keep], labels[keep]
    boxes = boxes[keep] if boxes is not None else None
    if settings.min_area > 0 and len(masks):
        masks, keep = min_area_filter(masks, settings)
        masks, scores, labels = masks[keep], scores[keep], labels[keep]
        boxes = boxes[keep] if boxes is not None else None
    if settings.fill_holes:
        masks = fill_holes(masks)
    if settings.nms_iou < 1.0 and len(masks) > 1:
        if settings.nms_kind == "box":
            iou = box_iou_matrix(
                boxes if boxes is not None else masks_to_boxes(masks),
                boxes if boxes is not None else masks_to_boxes(masks),
            )
        else:
            small = _small(masks, settings.iou_size)
            iou = mask_iou_matrix(small, small)
        iou = iou * (labels[:, None] == labels[None])  # NMS within a class
        kept = nms(scores, iou, settings.nms_iou)
        masks, scores, labels = masks[kept], scores[kept], labels[kept]
    if settings.merge and len(masks) > 1:
        masks, scores, labels = merge_overlapping(masks, scores, labels, settings.merge_overlap)
    order = scores.argsort(descending=True)
    rank = torch.zeros_like(order)  # rank of each instance among those of its label
    for label in labels.unique():
        mine = order[labels[order] == label]
        rank[mine] = torch.arange(len(mine), device=rank.device)
    order = order[rank[order] < settings.top_k]
    masks, scores, labels = masks[order], scores[order], labels[order]
    return masks, scores, labels, masks_to_boxes(masks)
