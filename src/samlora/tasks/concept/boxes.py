"""Box conversions and pairwise box overlaps (torch).

Conventions: boxes are ``... x 4`` float tensors, either ``XYXY`` (x_min, y_min, x_max, y_max) or
``CXCYWH`` (centre x, centre y, width, height), in any consistent unit (SAM 3's ``pred_boxes`` are
normalised ``XYXY`` in [0, 1]). Overlap functions expect valid ``XYXY`` boxes (``x_max >= x_min``,
``y_max >= y_min``); degenerate (zero-area) boxes are allowed and never produce NaN.
"""

from __future__ import annotations

import torch
from torch import Tensor

_EPS = 1e-7


def box_xyxy_to_cxcywh(boxes: Tensor) -> Tensor:
    """``... x 4`` XYXY -> ``... x 4`` CXCYWH."""
    x0, y0, x1, y1 = boxes.unbind(-1)
    return torch.stack(((x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0), dim=-1)


def box_cxcywh_to_xyxy(boxes: Tensor) -> Tensor:
    """``... x 4`` CXCYWH -> ``... x 4`` XYXY."""
    cx, cy, w, h = boxes.unbind(-1)
    return torch.stack((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), dim=-1)


def box_area(boxes: Tensor) -> Tensor:
    """``... x 4`` XYXY -> ``...`` areas (negative extents count as 0)."""
    return (boxes[..., 2] - boxes[..., 0]).clamp(min=0) * (boxes[..., 3] - boxes[..., 1]).clamp(min=0)


def _inter_union(boxes1: Tensor, boxes2: Tensor) -> tuple[Tensor, Tensor]:
    area1, area2 = box_area(boxes1), box_area(boxes2)
    lt = torch.maximum(boxes1[:, None, :2], boxes2[None, :, :2])
    rb = torch.minimum(boxes1[:, None, 2:], boxes2[None, :, 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    return inter, area1[:, None] + area2[None, :] - inter


def box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """Pairwise IoU. ``boxes1`` N x 4 and ``boxes2`` M x 4 XYXY -> N x M in [0, 1]."""
    inter, union = _inter_union(boxes1, boxes2)
    return inter / union.clamp(min=_EPS)


def generalized_box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """Pairwise generalised IoU (Rezatofighi et al. 2019). N x 4, M x 4 XYXY -> N x M in [-1, 1].

    ``GIoU = IoU - (|C| - |A u B|) / |C|`` with ``C`` the smallest box enclosing both.
    """
    inter, union = _inter_union(boxes1, boxes2)
    iou = inter / union.clamp(min=_EPS)
    lt = torch.minimum(boxes1[:, None, :2], boxes2[None, :, :2])
    rb = torch.maximum(boxes1[:, None, 2:], boxes2[None, :, 2:])
    wh = (rb - lt).clamp(min=0)
    enclosing = wh[..., 0] * wh[..., 1]
    return iou - (enclosing - union) / enclosing.clamp(min=_EPS)


def paired_box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """Element-wise IoU of matched boxes: N x 4 and N x 4 XYXY -> N."""
    lt = torch.maximum(boxes1[:, :2], boxes2[:, :2])
    rb = torch.minimum(boxes1[:, 2:], boxes2[:, 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[:, 0] * wh[:, 1]
    union = box_area(boxes1) + box_area(boxes2) - inter
    return inter / union.clamp(min=_EPS)


def paired_generalized_box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """Element-wise GIoU of matched boxes: N x 4 and N x 4 XYXY -> N."""
    lt = torch.maximum(boxes1[:, :2], boxes2[:, :2])
    rb = torch.minimum(boxes1[:, 2:], boxes2[:, 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[:, 0] * wh[:, 1]
    union = box_area(boxes1) + box_area(boxes2) - inter
    iou = inter / union.clamp(min=_EPS)
    lt_c = torch.minimum(boxes1[:, :2], boxes2[:, :2])
    rb_c = torch.maximum(boxes1[:, 2:], boxes2[:, 2:])
    wh_c = (rb_c - lt_c).clamp(min=0)
    enclosing = wh_c[:, 0] * wh_c[:, 1]
    return iou - (enclosing - union) / enclosing.clamp(min=_EPS)
