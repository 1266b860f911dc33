"""ConceptSetLoss on hand-made cases: perfect predictions, negative prompts, hand-computed terms,
gradients, autocast."""

from __future__ import annotations

import math

import pytest
import torch

from samlora.tasks.concept.boxes import box_xyxy_to_cxcywh
from samlora.tasks.concept.set_loss import ConceptSetLoss

Q, H = 5, 8  # queries, prediction mask side (ground truth is 2H)


def _gt(k: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """k objects: block masks on a 2H x 2H grid aligned to the H x H prediction grid, tight boxes."""
    masks = torch.zeros(k, 2 * H, 2 * H, dtype=torch.bool)
    boxes = torch.zeros(k, 4)
    for j in range(k):
        y0, x0 = 2 * (j + seed % 2), 2 * j
        masks[j, y0 : y0 + 6, x0 : x0 + 8] = True
        boxes[j] = torch.tensor([x0, y0, x0 + 8, y0 + 6]) / (2 * H)
    return {"boxes": boxes, "masks": masks}


def _perfect_outputs(
    targets: list[dict[str, torch.Tensor]], slots: list[list[int]]
) -> dict[str, torch.Tensor]:
    """Outputs whose queries ``slots[i][j]`` reproduce object j of pair i exactly."""
    n = len(targets)
    g = torch.Generator().manual_seed(1)
    boxes = torch.rand(n, Q, 2, generator=g) * 0.3
    boxes = torch.cat([boxes, boxes + 0.6], dim=-1)
    logits = torch.full((n, Q), -12.0)
    masks = torch.full((n, Q, H, H), -20.0)
    presence = torch.full((n, 1), -12.0)
    for i, (t, s) in enumerate(zip(targets, slots)):
        for j, q in enumerate(s):
            boxes[i, q] = t["boxes"][j]
            logits[i, q] = 12.0
            masks[i, q] = torch.where(t["masks"][j, ::2, ::2], 20.0, -20.0)
        if t["boxes"].shape[0]:
            presence[i] = 12.0
    return {"pred_logits": logits, "pred_boxes": boxes, "pred_masks": masks, "presence_logits": presence}


def test_perfect_prediction_gives_near_zero_loss() -> None:
    targets = [
        _gt(2),
        {"boxes": torch.zeros(0, 4), "masks": torch.zeros(0, 2 * H, 2 * H, dtype=torch.bool)},
        _gt(1, 1),
    ]
    outputs = _perfect_outputs(targets, [[3, 1], [], [4]])
    total, terms = ConceptSetLoss()(outputs, targets)
    for name in ("loss_bbox", "loss_giou", "loss_mask", "loss_dice", "loss_class", "loss_presence"):
        assert float(terms[name]) < 1e-4, (name, float(terms[name]))
    assert total.item() < 1e-2
    assert float(terms["num_boxes"]) == 3.0 and float(terms["presence_accuracy"]) == 1.0
    # SAM 3's own variant upsamples predictions to the ground truth's size (same size here).
    same_size = [{"boxes": t["boxes"], "masks": t["masks"][:, ::2, ::2]} for t in targets]
    _, terms = ConceptSetLoss(mask_loss_resolution="target")(outputs, same_size)
    assert float(terms["loss_mask"]) < 1e-4 and float(terms["loss_dice"]) < 1e-4
    _, blurred = ConceptSetLoss(mask_loss_resolution="target")(outputs, targets)  # bilinear upsampling
    assert 0 < float(blurred["loss_dice"]) < 0.05


def test_negative_prompts_contribute_only_presence() -> None:
    loss = ConceptSetLoss()
    empty = {"boxes": torch.zeros(0, 4), "masks": torch.zeros(0, 2 * H, 2 * H, dtype=torch.bool)}
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(2, Q, generator=g, requires_grad=True)
    masks = torch.randn(2, Q, H, H, generator=g, requires_grad=True)
    outputs = {
        "pred_logits": logits,
        "pred_boxes": torch.rand(2, Q, 4, generator=g).sort(-1).values,
        "pred_masks": masks,
        "presence_logits": torch.tensor([[0.5], [-1.0]], requires_grad=True),
    }
    total, terms = loss(outputs, [empty, empty])
    for name in ("loss_class", "loss_bbox", "loss_giou", "loss_mask", "loss_dice"):
        assert float(terms[name]) == 0.0
    bce = (math.log1p(math.exp(0.5)) + math.log1p(math.exp(-1.0))) / 2  # targets 0, mean over pairs
    assert float(terms["loss_presence"]) == pytest.approx(0.5 * bce, rel=1e-5)
    assert total.item() == pytest.approx(20.0 * 0.5 * bce, rel=1e-5)
    total.backward()
    assert float(logits.grad.abs().sum()) == 0.0 and outputs["presence_logits"].grad.abs().sum() > 0
    # Without a presence head SAM 3 pushes every query of a negative prompt to 0 instead.
    no_presence = {k: v.detach() for k, v in outputs.items() if k != "presence_logits"}
    _, terms = ConceptSetLoss(use_presence=False)(no_presence, [empty, empty])
    assert float(terms["loss_class"]) > 0 and float(terms["loss_presence"]) == 0.0
    with pytest.raises(ValueError, match="presence_logits"):
        loss(no_presence, [empty, empty])


def test_terms_match_hand_computation() -> None:
    gt = {"boxes": torch.tensor([[0.2, 0.2, 0.6, 0.5]])}  # no masks: mask terms are 0
    pred_boxes = torch.tensor([[[0.0, 0.0, 0.1, 0.1], [0.25, 0.2, 0.6, 0.6]]])
    outputs = {
        "pred_logits": torch.tensor([[-1.0, 0.5]]),
        "pred_boxes": pred_boxes,
        "presence_logits": torch.tensor([[2.0]]),
    }
    total, terms = ConceptSetLoss()(outputs, [gt])
    sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    bce = lambda x, t: -(t * math.log(sig(x)) + (1 - t) * math.log(1 - sig(x)))  # noqa: E731
    iou = (0.35 * 0.3) / (0.4 * 0.3 + 0.35 * 0.4 - 0.35 * 0.3)
    t = max(sig(0.5) ** 0.25 * iou**0.75, 0.01)
    expected_class = (10.0 * bce(0.5, t) + bce(-1.0, 0.0) * sig(-1.0) ** 2) / (1 * 200)  # pad_n_queries
    assert float(terms["loss_class"]) == pytest.approx(expected_class, rel=1e-5)
    assert float(terms["loss_presence"]) == pytest.approx(0.5 * bce(2.0, 1.0), rel=1e-5)
    l1 = (box_xyxy_to_cxcywh(pred_boxes[0, 1]) - box_xyxy_to_cxcywh(gt["boxes"][0])).abs().sum()
    assert float(terms["loss_bbox"]) == pytest.approx(float(l1), rel=1e-5)
    enclosing = 0.4 * 0.4
    union = 0.4 * 0.3 + 0.35 * 0.4 - 0.35 * 0.3
    assert float(terms["loss_giou"]) == pytest.approx(1 - (iou - (enclosing - union) / enclosing), rel=1e-5)
    assert float(terms["loss_mask"]) == 0.0 and float(terms["loss_dice"]) == 0.0
    expected_total = 20 * expected_class + 20 * float(terms["loss_presence"]) + 5 * float(l1)
    expected_total += 2 * float(terms["loss_giou"])
    assert total.item() == pytest.approx(expected_total, rel=1e-5)
    # The DETR-variant focal classification: sum over queries / number of objects.
    _, focal_terms = ConceptSetLoss(class_loss="focal")(outputs, [gt])
    p0, p1 = sig(-1.0), sig(0.5)
    expected_focal = 0.75 * p0**2 * bce(-1.0, 0.0) + 0.25 * (1 - p1) ** 2 * bce(0.5, 1.0)
    assert float(focal_terms["loss_class"]) == pytest.approx(expected_focal, rel=1e-5)


def test_normalised_by_objects_in_batch() -> None:
    targets = [_gt(2)]
    outputs = _perfect_outputs(targets, [[0, 1]])
    outputs["pred_boxes"][0, 0] += 0.05
    _, one = ConceptSetLoss()(outputs, targets)
    doubled = {k: torch.cat([v, v]) for k, v in outputs.items()}
    _, two = ConceptSetLoss()(doubled, targets * 2)
    assert float(two["num_boxes"]) == 4.0
    for name in ("loss_bbox", "loss_giou", "loss_mask", "loss_dice", "loss_presence"):
        assert float(two[name]) == pytest.approx(float(one[name]), rel=1e-5, abs=1e-7)


def _random_case(
    dtype: torch.dtype = torch.float32,
) -> tuple[dict[str, torch.Tensor], list[dict[str, torch.Tensor]]]:
    g = torch.Generator().manual_seed(3)
    corners = torch.rand(3, Q, 2, 2, generator=g)
    outputs = {
        "pred_logits": torch.randn(3, Q, generator=g),
        "pred_boxes": torch.cat([corners.min(2).values, corners.max(2).values], -1),
        "pred_masks": torch.randn(3, Q, H, H, generator=g),
        "presence_logits": torch.randn(3, 1, generator=g),
    }
    outputs = {k: v.to(dtype).requires_grad_() for k, v in outputs.items()}
    empty = {"boxes": torch.zeros(0, 4), "masks": torch.zeros(0, 2 * H, 2 * H, dtype=torch.bool)}
    return outputs, [_gt(2), empty, _gt(3, 1)]


def test_gradients_flow_to_every_output() -> None:
    outputs, targets = _random_case()
    total, terms = ConceptSetLoss()(outputs, targets)
    assert set(terms) >= {"loss_class", "loss_presence", "loss_bbox", "loss_giou", "loss_mask", "loss_dice"}
    total.backward()
    for name, tensor in outputs.items():
        assert tensor.grad is not None and torch.isfinite(tensor.grad).all(), name
        assert tensor.grad.abs().sum() > 0, name


def test_float32_under_autocast() -> None:
    outputs, targets = _random_case(torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        total, terms = ConceptSetLoss()(outputs, targets)
    assert total.dtype == torch.float32 and torch.isfinite(total)
    assert all(v.dtype == torch.float32 for v in terms.values())
    reference, _ = ConceptSetLoss()({k: v.detach().float() for k, v in outputs.items()}, targets)
    assert total.item() == pytest.approx(float(reference), rel=1e-5)
    total.backward()
    assert outputs["pred_masks"].grad.dtype == torch.bfloat16


def test_bad_inputs_are_explained() -> None:
    outputs, targets = _random_case()
    with pytest.raises(ValueError, match="targets"):
        ConceptSetLoss()(outputs, targets[:2])
    with pytest.raises(ValueError, match="class_loss"):
        ConceptSetLoss(class_loss="softmax")  # type: ignore[arg-type]
    mixed = [targets[0], targets[1], {"boxes": targets[2]["boxes"]}]
    with pytest.raises(ValueError, match="no 'masks'"):
        ConceptSetLoss()(outputs, mixed)
