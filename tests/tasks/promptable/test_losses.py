"""Losses against hand-computed values on tiny tensors, multimask selection, gradients, autocast."""

from __future__ import annotations

import math

import pytest
import torch

from samlora.tasks.promptable.losses import (
    PromptableLoss,
    boundary_weighted_bce,
    dice_loss,
    edge_band,
    iou_head_loss,
    resize_targets,
    sigmoid_focal_loss,
)

LN2 = math.log(2.0)


def _perfect_logits(target: torch.Tensor, scale: float = 20.0) -> torch.Tensor:
    return torch.where(target.bool(), scale, -scale)


def _square(h: int, w: int, r0: int, r1: int, c0: int, c1: int) -> torch.Tensor:
    m = torch.zeros(h, w, dtype=torch.bool)
    m[r0:r1, c0:c1] = True
    return m


def _brute_band(target: torch.Tensor, width: int) -> torch.Tensor:
    """Pixels whose (2w+1)^2 window, clipped to the image, holds both foreground and background."""
    h, w = target.shape
    out = torch.zeros(h, w, dtype=torch.bool)
    for r in range(h):
        for c in range(w):
            win = target[max(0, r - width) : r + width + 1, max(0, c - width) : c + width + 1]
            out[r, c] = bool(win.any()) and not bool(win.all())
    return out


# --------------------------------------------------------------------------- dice / focal


def test_dice_loss_by_hand():
    logits = torch.zeros(1, 2, 2)  # p = 0.5 everywhere
    target = torch.tensor([[[1.0, 0.0], [0.0, 0.0]]])
    # inter 0.5, sum p 2, sum t 1: 1 - (2 * 0.5 + 1) / (3 + 1) = 0.5
    assert dice_loss(logits, target).tolist() == pytest.approx([0.5])
    # valid pixels: only the top row -> inter 0.5, sum p 1, sum t 1: 1 - 2 / 3
    valid = torch.tensor([[True, True], [False, False]])
    assert dice_loss(logits, target, valid=valid).tolist() == pytest.approx([1 / 3])
    # smooth 0: 1 - 1 / 3
    assert dice_loss(logits, target, smooth=0.0).tolist() == pytest.approx([2 / 3])


def test_focal_loss_by_hand():
    logits = torch.zeros(1, 1, 2)  # p = 0.5: BCE ln 2, (1 - p_t)^2 = 0.25 for both pixels
    target = torch.tensor([[[1.0, 0.0]]])
    pos, neg = 0.25 * 0.25 * LN2, 0.75 * 0.25 * LN2
    assert sigmoid_focal_loss(logits, target).tolist() == pytest.approx([(pos + neg) / 2])
    assert sigmoid_focal_loss(logits, target, alpha=-1).tolist() == pytest.approx([0.25 * LN2])
    assert sigmoid_focal_loss(logits, target, gamma=0.0, alpha=-1).tolist() == pytest.approx([LN2])
    valid = torch.tensor([[True, False]])
    assert sigmoid_focal_loss(logits, target, valid=valid).tolist() == pytest.approx([pos])
    # a confident pixel: logit 2, target 1: p = sigmoid(2), BCE = -log p, weight 0.25 (1 - p)^2
    p = 1 / (1 + math.exp(-2.0))
    got = sigmoid_focal_loss(torch.tensor([[[2.0]]]), torch.tensor([[[1.0]]]))
    assert got.item() == pytest.approx(0.25 * (1 - p) ** 2 * -math.log(p))


def test_perfect_prediction_gives_near_zero_mask_losses():
    target = torch.stack([_square(8, 8, 2, 6, 1, 5), torch.zeros(8, 8, dtype=torch.bool)])
    logits = _perfect_logits(target)
    assert dice_loss(logits, target).max().item() < 1e-6
    assert sigmoid_focal_loss(logits, target).max().item() < 1e-12
    assert boundary_weighted_bce(logits, target).max().item() < 1e-6
    # inverted: inter ~0, sum p ~48, sum t 16 -> 1 - 1 / 65
    assert dice_loss(-logits, target)[0].item() == pytest.approx(1 - 1 / 65, rel=1e-6)


def test_candidate_shapes_and_broadcast_targets():
    logits = torch.randn(2, 3, 5, 6)
    target = torch.rand(2, 5, 6) > 0.5
    for fn in (dice_loss, sigmoid_focal_loss, boundary_weighted_bce):
        out = fn(logits, target)
        assert out.shape == (2, 3)
        per_candidate = torch.stack([fn(logits[:, k], target) for k in range(3)], dim=1)
        assert torch.allclose(out, per_candidate)
        assert torch.allclose(out, fn(logits, target[:, None].expand(2, 3, 5, 6)))
    with pytest.raises(ValueError, match="does not match"):
        dice_loss(logits, torch.zeros(3, 5, 6))
    with pytest.raises(ValueError, match="N x H x W or N x M x H x W"):
        dice_loss(torch.zeros(5, 6), torch.zeros(5, 6))


# --------------------------------------------------------------------------- boundary


def test_edge_band_matches_window_definition():
    target = _square(9, 10, 2, 7, 3, 8)
    for width in (1, 2, 3):
        assert torch.equal(edge_band(target, width), _brute_band(target, width))
    # width 1 around a 5 x 5 square: a 7 x 7 ring minus the 3 x 3 interior
    assert edge_band(target, 1).sum().item() == 49 - 9
    # the image border is not an edge: an all-foreground or all-background target has no band
    assert not edge_band(torch.ones(6, 6), 2).any() and not edge_band(torch.zeros(6, 6), 2).any()
    # soft targets: foreground where > 0.5
    assert torch.equal(edge_band(target.float() * 0.9, 1), edge_band(target, 1))
    assert edge_band(torch.zeros(0, 4, 4), 1).shape == (0, 4, 4)


def test_boundary_weighted_bce_by_hand():
    target = _square(8, 8, 2, 6, 2, 6)[None].float()
    # constant BCE (logit 0 -> ln 2 per pixel): the weighted mean is ln 2 whatever the weight
    assert boundary_weighted_bce(torch.zeros(1, 8, 8), target, 1, 5.0).item() == pytest.approx(LN2)
    torch.manual_seed(0)
    logits = torch.randn(1, 8, 8)
    p = torch.sigmoid(logits.double())
    bce = -(target * torch.log(p) + (1 - target) * torch.log(1 - p))
    w = 1 + 5.0 * _brute_band(target[0].bool(), 2).double()
    expected = (w * bce).sum() / w.sum()
    assert boundary_weighted_bce(logits, target, 2, 5.0).item() == pytest.approx(expected.item(), rel=1e-5)
    # weight 0 is plain BCE
    assert boundary_weighted_bce(logits, target, 2, 0.0).item() == pytest.approx(bce.mean().item(), rel=1e-5)


def test_boundary_weight_only_near_edges():
    target = _square(12, 12, 3, 9, 3, 9)[None]
    band = edge_band(target, 2)[0]
    base = torch.where(target, 3.0, -3.0)
    # an error far from the edge (image corner) costs the same with or without extra weight
    far = base.clone()
    far[0, 0, 0] = 3.0
    near = base.clone()
    near[0, 3, 3] = -3.0  # corner pixel of the square, inside the band
    assert not band[0, 0] and band[3, 3]
    gain_far = (
        boundary_weighted_bce(far, target, 2, 5.0) - boundary_weighted_bce(base, target, 2, 5.0)
    ).item()
    gain_near = (
        boundary_weighted_bce(near, target, 2, 5.0) - boundary_weighted_bce(base, target, 2, 5.0)
    ).item()
    assert gain_near == pytest.approx(6 * gain_far, rel=1e-4)  # weight 1 + 5 in the band, 1 outside


# --------------------------------------------------------------------------- IoU head


def test_iou_head_loss_by_hand():
    logits = torch.full((1, 3, 3), -5.0, requires_grad=True)
    with torch.no_grad():
        logits[0, 0, :2] = 5.0  # predicted: 2 px
    target = torch.zeros(1, 3, 3)
    target[0, 0, 1:] = 1.0
    target[0, 1, 2] = 1.0  # target: 3 px, overlap 1 px, union 4 px -> IoU 0.25
    pred_iou = torch.tensor([0.5], requires_grad=True)
    loss = iou_head_loss(pred_iou, logits, target)
    assert loss.tolist() == pytest.approx([0.0625])
    loss.sum().backward()
    assert pred_iou.grad.tolist() == pytest.approx([2 * 0.25])
    assert logits.grad is None  # the actual IoU is detached
    both_empty = iou_head_loss(torch.tensor([0.75]), torch.full((1, 2, 2), -1.0), torch.zeros(1, 2, 2))
    assert both_empty.tolist() == pytest.approx([0.0625])  # actual IoU 1.0
    with pytest.raises(ValueError, match="pred_iou"):
        iou_head_loss(torch.zeros(2), logits, target)


# --------------------------------------------------------------------------- PromptableLoss


def test_promptable_loss_total_is_weighted_sum_of_terms():
    torch.manual_seed(0)
    logits, pred_iou = torch.randn(3, 1, 8, 8), torch.rand(3, 1)
    target = torch.rand(3, 8, 8) > 0.5
    loss = PromptableLoss(dice=1.0, focal=20.0, boundary=2.0, iou=1.0, boundary_width=1, boundary_weight=4.0)
    total, terms = loss(logits, pred_iou, target)
    assert set(terms) == {"loss_dice", "loss_focal", "loss_boundary", "loss_iou", "loss"}
    assert terms["loss_dice"].item() == pytest.approx(dice_loss(logits, target).mean().item())
    assert terms["loss_focal"].item() == pytest.approx(sigmoid_focal_loss(logits, target).mean().item())
    assert terms["loss_boundary"].item() == pytest.approx(
        boundary_weighted_bce(logits, target, 1, 4.0).mean().item()
    )
    assert terms["loss_iou"].item() == pytest.approx(iou_head_loss(pred_iou, logits, target).mean().item())
    expected = terms["loss_dice"] + 20 * terms["loss_focal"] + 2 * terms["loss_boundary"] + terms["loss_iou"]
    assert total.item() == pytest.approx(expected.item(), rel=1e-6)
    assert terms["loss"].item() == pytest.approx(total.item())
    # boundary weight 0 (the default): the term is still logged, and not in the total
    total0, terms0 = PromptableLoss(boundary_width=1, boundary_weight=4.0)(logits, pred_iou, target)
    assert terms0["loss_boundary"].item() == pytest.approx(terms["loss_boundary"].item())
    assert total0.item() == pytest.approx(
        (terms0["loss_dice"] + 20 * terms0["loss_focal"] + terms0["loss_iou"]).item(), rel=1e-6
    )
    # N x h x w logits and N pred_iou are accepted as M = 1
    total3, _ = PromptableLoss()(logits[:, 0], pred_iou[:, 0], target)
    assert total3.item() == pytest.approx(total0.item())


def test_multimask_selects_candidate_equal_to_target_and_supervises_all_ious():
    torch.manual_seed(1)
    target = torch.stack([_square(10, 10, 2, 7, 2, 7), _square(10, 10, 0, 4, 5, 10)])
    logits = torch.randn(2, 3, 10, 10) * 3
    logits[0, 2] = _perfect_logits(target[0])
    logits[1, 0] = _perfect_logits(target[1])
    logits.requires_grad_(True)
    pred_iou = torch.rand(2, 3, requires_grad=True)
    total, terms = PromptableLoss()(logits, pred_iou, target)
    assert terms["loss_dice"].item() < 1e-6 and terms["loss_focal"].item() < 1e-9
    expected_iou = iou_head_loss(pred_iou, logits, target).mean()
    assert terms["loss_iou"].item() == pytest.approx(expected_iou.item())
    total.backward()
    grad_norm = logits.grad.abs().flatten(2).sum(-1)  # N x M
    # only the selected candidates receive mask gradient
    assert grad_norm[0, 0] == 0 and grad_norm[0, 1] == 0 and grad_norm[1, 1] == 0 and grad_norm[1, 2] == 0
    assert (pred_iou.grad != 0).all()  # every candidate's IoU prediction is supervised


def test_multimask_selection_uses_weighted_mask_loss():
    torch.manual_seed(2)
    target = _square(8, 8, 2, 6, 2, 6)[None]
    logits = torch.randn(1, 3, 8, 8)
    pred_iou = torch.rand(1, 3)
    loss = PromptableLoss(dice=1.0, focal=20.0)
    d = dice_loss(logits, target)
    f = sigmoid_focal_loss(logits, target)
    best = int((d + 20 * f).argmin(dim=1))
    _, terms = loss(logits, pred_iou, target)
    assert terms["loss_dice"].item() == pytest.approx(d[0, best].item())
    assert terms["loss_focal"].item() == pytest.approx(f[0, best].item())


def test_valid_objects_and_no_valid_object():
    torch.manual_seed(3)
    logits = torch.randn(3, 1, 6, 6, requires_grad=True)
    pred_iou = torch.rand(3, 1)
    target = torch.rand(3, 6, 6) > 0.5
    loss = PromptableLoss()
    valid = torch.tensor([True, False, True])
    total, _ = loss(logits, pred_iou, target, valid=valid)
    keep = valid.nonzero().flatten()
    expected, _ = loss(logits[keep], pred_iou[keep], target[keep])
    assert total.item() == pytest.approx(expected.item(), rel=1e-6)
    total.backward()
    assert logits.grad[1].abs().sum() == 0 and logits.grad[0].abs().sum() > 0
    none, terms = loss(logits, pred_iou, target, valid=torch.zeros(3, dtype=torch.bool))
    assert none.item() == 0.0 and terms["loss"].item() == 0.0 and none.requires_grad
    none.backward()
    with pytest.raises(ValueError, match="valid"):
        loss(logits, pred_iou, target, valid=torch.ones(2, dtype=torch.bool))


def test_promptable_loss_input_errors():
    with pytest.raises(ValueError, match="focal=-1"):
        PromptableLoss(focal=-1)
    loss = PromptableLoss()
    with pytest.raises(ValueError, match="pred_iou"):
        loss(torch.zeros(2, 3, 4, 4), torch.zeros(2, 1), torch.zeros(2, 4, 4))
    with pytest.raises(ValueError, match="targets"):
        loss(torch.zeros(2, 3, 4, 4), torch.zeros(2, 3), torch.zeros(2, 5, 4))


def test_gradients_flow_to_logits_and_iou():
    torch.manual_seed(4)
    logits = torch.randn(2, 3, 8, 8, requires_grad=True)
    pred_iou = torch.rand(2, 3, requires_grad=True)
    target = torch.rand(2, 8, 8) > 0.5
    total, _ = PromptableLoss(boundary=1.0)(logits, pred_iou, target)
    total.backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0
    assert torch.isfinite(pred_iou.grad).all() and pred_iou.grad.abs().sum() > 0


def test_autocast_bf16_on_cpu():
    torch.manual_seed(5)
    logits32 = torch.randn(2, 3, 8, 8)
    logits = logits32.bfloat16().requires_grad_(True)
    pred_iou = torch.rand(2, 3).bfloat16().requires_grad_(True)
    target = torch.rand(2, 8, 8) > 0.5
    loss = PromptableLoss(boundary=1.0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        total, terms = loss(logits, pred_iou, target)
    assert total.dtype == torch.float32 and all(v.dtype == torch.float32 for v in terms.values())
    reference, _ = loss(logits.detach().float(), pred_iou.detach().float(), target)
    assert total.item() == pytest.approx(reference.item(), rel=1e-6)
    total.backward()
    assert logits.grad.dtype == torch.bfloat16 and torch.isfinite(logits.grad.float()).all()
    assert pred_iou.grad is not None


# --------------------------------------------------------------------------- resize


def test_resize_targets_area_no_threshold():
    masks = torch.zeros(2, 4, 4, dtype=torch.bool)
    masks[0, :2, :2] = True
    masks[1, 0, 0] = True
    out = resize_targets(masks, (2, 2))
    assert out.dtype == torch.float32 and out.shape == (2, 2, 2)
    assert out[0].tolist() == [[1.0, 0.0], [0.0, 0.0]]
    assert out[1].tolist() == [[0.25, 0.0], [0.0, 0.0]]
    assert resize_targets(torch.zeros(0, 4, 4, dtype=torch.bool), (2, 3)).shape == (0, 2, 3)
    with pytest.raises(ValueError, match="N x H x W"):
        resize_targets(torch.zeros(4, 4, dtype=torch.bool), (2, 2))
