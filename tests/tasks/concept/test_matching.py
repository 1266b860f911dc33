"""Hungarian matcher and box helpers: brute force over all assignments, SAM 3's class cost, edge cases."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from samlora.tasks.concept.boxes import (
    box_cxcywh_to_xyxy,
    box_iou,
    box_xyxy_to_cxcywh,
    generalized_box_iou,
    paired_box_iou,
    paired_generalized_box_iou,
)
from samlora.tasks.concept.matching import hungarian_match, match_batch, matching_cost, resize_masks


def _random_boxes(generator: torch.Generator, n: int) -> torch.Tensor:
    """n x 4 valid normalised XYXY boxes."""
    corners = torch.rand(n, 2, 2, generator=generator)
    lo, hi = corners.min(dim=1).values, corners.max(dim=1).values
    return torch.cat([lo, hi + 0.01], dim=1).clamp(max=1.0)


def _brute_force_min(cost: torch.Tensor) -> float:
    """Minimum total cost over every one-to-one assignment of size min(Q, K)."""
    q, k = cost.shape
    if k <= q:
        return min(
            sum(float(cost[p, j]) for j, p in enumerate(perm)) for perm in itertools.permutations(range(q), k)
        )
    return min(
        sum(float(cost[i, g]) for i, g in enumerate(perm)) for perm in itertools.permutations(range(k), q)
    )


@pytest.mark.parametrize("seed", range(40))
def test_hungarian_matches_brute_force(seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    q = int(torch.randint(1, 6, (1,), generator=g))
    k = int(torch.randint(1, 4, (1,), generator=g))
    logits = torch.randn(q, generator=g) * 3
    pred_boxes, gt_boxes = _random_boxes(g, q), _random_boxes(g, k)
    use_masks = seed % 2 == 0
    extra = {}
    if use_masks:
        extra = {
            "cost_mask": 1.0,
            "cost_dice": 1.0,
            "pred_masks": torch.randn(q, 6, 6, generator=g) * 4,
            "gt_masks": torch.rand(k, 12, 12, generator=g) > 0.5,
        }
    pred_idx, gt_idx = hungarian_match(logits, pred_boxes, gt_boxes, **extra)
    cost = matching_cost(logits, pred_boxes, gt_boxes, **extra)
    assert len(pred_idx) == len(gt_idx) == min(q, k)
    assert len(set(pred_idx.tolist())) == len(pred_idx) and len(set(gt_idx.tolist())) == len(gt_idx)
    assert gt_idx.tolist() == sorted(gt_idx.tolist())
    total = float(cost[pred_idx, gt_idx].sum())
    assert total == pytest.approx(_brute_force_min(cost), abs=1e-5)


def test_cost_terms_follow_sam3_definition() -> None:
    logits = torch.tensor([0.3, -1.2])
    pred = torch.tensor([[0.1, 0.1, 0.5, 0.4], [0.2, 0.3, 0.9, 0.8]])
    gt = torch.tensor([[0.15, 0.1, 0.55, 0.5]])
    cost = matching_cost(logits, pred, gt, cost_class=2.0, cost_bbox=5.0, cost_giou=2.0)
    for i in range(2):
        p = 1 / (1 + math.exp(-float(logits[i])))
        focal = -0.25 * (1 - p) ** 2 * math.log(p) + 0.75 * p**2 * math.log(1 - p)
        l1 = float((box_xyxy_to_cxcywh(pred[i]) - box_xyxy_to_cxcywh(gt[0])).abs().sum())
        giou = float(generalized_box_iou(pred[i : i + 1], gt)[0, 0])
        assert float(cost[i, 0]) == pytest.approx(2 * focal + 5 * l1 - 2 * giou, rel=1e-5)


def test_confident_query_wins_between_identical_boxes() -> None:
    box = torch.tensor([[0.2, 0.2, 0.6, 0.6]])
    pred_idx, gt_idx = hungarian_match(torch.tensor([-3.0, 4.0]), box.repeat(2, 1), box)
    assert pred_idx.tolist() == [1] and gt_idx.tolist() == [0]


def test_mask_costs_pick_the_right_mask() -> None:
    gt = torch.zeros(2, 8, 8, dtype=torch.bool)
    gt[0, :4], gt[1, 4:] = True, True
    pred = torch.full((3, 4, 4), -8.0)
    pred[0, 2:], pred[2, :2] = 8.0, 8.0  # query 0 = object 1, query 2 = object 0
    boxes = torch.tensor([[0.0, 0.0, 1.0, 1.0]]).repeat(3, 1)
    pred_idx, gt_idx = hungarian_match(
        torch.zeros(3),
        boxes,
        boxes[:2],
        0.0,
        0.0,
        0.0,
        cost_dice=1.0,
        cost_mask=1.0,
        pred_masks=pred,
        gt_masks=gt,
    )
    assert dict(zip(gt_idx.tolist(), pred_idx.tolist())) == {0: 2, 1: 0}


def test_empty_ground_truth_and_non_finite_predictions() -> None:
    pred_idx, gt_idx = hungarian_match(torch.zeros(4), torch.rand(4, 4), torch.zeros(0, 4))
    assert pred_idx.numel() == 0 and gt_idx.numel() == 0 and pred_idx.dtype == torch.int64
    boxes = torch.tensor([[0.1, 0.1, 0.5, 0.5], [float("nan"), 0.1, 0.5, 0.5]])
    with pytest.raises(ValueError, match="not finite"):
        hungarian_match(torch.zeros(2), boxes, boxes[:1])


def test_match_batch_with_negative_prompt_and_model_output() -> None:
    from transformers.models.sam3.modeling_sam3 import Sam3ImageSegmentationOutput

    g = torch.Generator().manual_seed(0)
    gt0 = _random_boxes(g, 2)
    boxes = torch.rand(2, 5, 4, generator=g) * 0.1
    boxes[..., 2:] += 0.5
    boxes[0, 3], boxes[0, 1] = gt0[0], gt0[1]
    outputs = Sam3ImageSegmentationOutput(pred_logits=torch.zeros(2, 5), pred_boxes=boxes, pred_masks=None)
    targets = [{"boxes": gt0}, {"boxes": torch.zeros(0, 4)}]
    matches = match_batch(outputs, targets)
    assert matches[0][0].tolist() == [3, 1] and matches[0][1].tolist() == [0, 1]
    assert matches[1][0].numel() == 0
    with pytest.raises(ValueError, match="targets"):
        match_batch(outputs, targets[:1])
    with pytest.raises(ValueError, match="pred_masks"):
        match_batch(outputs, targets, cost_dice=1.0)


def test_box_helpers() -> None:
    a = torch.tensor([[0.0, 0.0, 1.0, 1.0]])
    b = torch.tensor([[2.0, 0.0, 3.0, 1.0], [0.5, 0.0, 1.5, 1.0], [0.0, 0.0, 1.0, 1.0]])
    assert box_iou(a, b)[0].tolist() == pytest.approx([0.0, 1 / 3, 1.0])
    assert generalized_box_iou(a, b)[0].tolist() == pytest.approx([-1 / 3, 1 / 3, 1.0])
    assert paired_box_iou(a.repeat(3, 1), b).tolist() == pytest.approx([0.0, 1 / 3, 1.0])
    assert paired_generalized_box_iou(a.repeat(3, 1), b).tolist() == pytest.approx([-1 / 3, 1 / 3, 1.0])
    assert torch.allclose(box_cxcywh_to_xyxy(box_xyxy_to_cxcywh(b)), b)
    point = torch.tensor([[0.5, 0.5, 0.5, 0.5]])  # degenerate: no NaN
    assert torch.isfinite(generalized_box_iou(point, point)).all()


def test_resize_masks_area_fractions() -> None:
    masks = torch.zeros(1, 4, 4, dtype=torch.bool)
    masks[0, :2, :2] = True
    masks[0, 2, 2] = True
    small = resize_masks(masks, (2, 2))
    assert small[0].tolist() == [[1.0, 0.0], [0.0, 0.25]]
    assert resize_masks(torch.zeros(0, 4, 4, dtype=torch.bool), (2, 2)).shape == (0, 2, 2)
