"""Losses for promptable segmentation (SAM-style), as pure functions plus a weighted module.

Shapes: mask ``logits`` are ``N x M x H x W`` (``N`` objects, ``M`` candidate
masks per object, 1 or 3) or ``N x H x W``. ``targets`` have the same shape as
the logits, or ``N x H x W`` with ``N x M x H x W`` logits (then every candidate
is compared with the same target). Targets are bool or float in ``[0, 1]`` (soft
targets from :func:`resize_targets` are fine); where a hard mask is needed (the
edge band, the actual IoU) a target pixel is foreground when ``> 0.5``. A
predicted pixel is foreground when its logit is ``> 0``.

Every per-object function returns ``logits.shape[:-2]``: ``N``, or ``N x M``.
All of them compute in float32 with autocast disabled, so they can be called
inside ``torch.autocast`` (bf16/fp16) regions.

``valid`` (pixel mask) arguments, where accepted, are bool, broadcast like the
targets (``H x W``, ``N x H x W`` or the logits' shape): pixels outside it (image
padding, crowd regions) contribute nothing.

The recipe of :class:`PromptableLoss` follows SAM (Kirillov et al., 2023, §3 and
appendix A): focal and dice loss in a 20:1 ratio, an IoU-head MSE added with
weight 1, and, with several candidate masks, only the candidate with the lowest
mask loss is back-propagated (the IoU head is supervised on every candidate, as
SAM 2's training code does with ``supervise_all_iou``).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from typing import TypeVar

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "PromptableLoss",
    "boundary_weighted_bce",
    "dice_loss",
    "edge_band",
    "iou_head_loss",
    "resize_targets",
    "sigmoid_focal_loss",
]

_F = TypeVar("_F", bound=Callable[..., object])


def _float32(fn: _F) -> _F:
    """Run ``fn`` with autocast disabled on the CPU and on every device its tensor arguments are on."""

    @functools.wraps(fn)
    def wrapper(*args: object, **kwargs: object) -> object:
        types = {"cpu"} | {a.device.type for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)}
        with contextlib.ExitStack() as stack:
            for device_type in sorted(types):
                if torch.amp.is_autocast_available(device_type):
                    stack.enter_context(torch.autocast(device_type, enabled=False))
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def _check_logits(logits: torch.Tensor) -> None:
    if logits.dim() not in (3, 4):
        raise ValueError(f"logits must be N x H x W or N x M x H x W, got shape {tuple(logits.shape)}")


def _like_logits(x: torch.Tensor, logits: torch.Tensor, name: str) -> torch.Tensor:
    """``x`` as float32 broadcast to the logits' shape (``H x W``, ``N x H x W`` or logits' shape)."""
    shape = tuple(logits.shape)
    xs = tuple(x.shape)
    if xs == shape or (len(xs) == 2 and xs == shape[-2:]):
        out = x
    elif len(shape) == 4 and xs == (shape[0], *shape[2:]):
        out = x[:, None]
    else:
        raise ValueError(f"{name} of shape {xs} does not match logits of shape {shape}")
    return out.to(device=logits.device, dtype=torch.float32).expand(shape)


def _spatial_mean(values: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    if weights is None:
        return values.mean(dim=(-2, -1))
    return (values * weights).sum(dim=(-2, -1)) / weights.sum(dim=(-2, -1)).clamp(min=1e-12)


@_float32
def dice_loss(
    logits: torch.Tensor, targets: torch.Tensor, valid: torch.Tensor | None = None, smooth: float = 1.0
) -> torch.Tensor:
    """Soft Dice loss per object: ``1 - (2 sum(p t) + s) / (sum(p) + sum(t) + s)``.

    ``p = sigmoid(logits)``, sums over the (valid) pixels, ``s = smooth`` (1.0, as
    in DETR's and SAM 2's dice loss; it makes an empty target with an empty
    prediction a zero loss). Returns ``logits.shape[:-2]`` (``N`` or ``N x M``).
    """
    _check_logits(logits)
    x = logits.float()
    t = _like_logits(targets, x, "targets")
    p = torch.sigmoid(x)
    if valid is not None:
        v = _like_logits(valid, x, "valid")
        p, t = p * v, t * v
    inter = (p * t).sum(dim=(-2, -1))
    denom = p.sum(dim=(-2, -1)) + t.sum(dim=(-2, -1))
    return 1 - (2 * inter + smooth) / (denom + smooth)


@_float32
def sigmoid_focal_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    alpha: float = 0.25,
    gamma: float = 2.0,
    valid: torch.Tensor | None = None,
) -> torch.Tensor:
    """Sigmoid focal loss (Lin et al. 2017), mean over the (valid) pixels of each object.

    Per pixel: ``a_t (1 - p_t)^gamma BCE(logit, t)`` with ``p_t = p t + (1 - p)(1 - t)``
    and ``a_t = alpha t + (1 - alpha)(1 - t)``; ``alpha < 0`` turns the alpha
    weighting off (torchvision's convention). Returns ``logits.shape[:-2]``.
    """
    _check_logits(logits)
    if gamma < 0:
        raise ValueError(f"focal gamma must be >= 0, got {gamma}")
    x = logits.float()
    t = _like_logits(targets, x, "targets")
    p = torch.sigmoid(x)
    ce = F.binary_cross_entropy_with_logits(x, t, reduction="none")
    p_t = p * t + (1 - p) * (1 - t)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = loss * (alpha * t + (1 - alpha) * (1 - t))
    v = _like_logits(valid, x, "valid") if valid is not None else None
    return _spatial_mean(loss, v)


@_float32
def edge_band(targets: torch.Tensor, width_px: int = 3) -> torch.Tensor:
    """Bool band of pixels within ``width_px`` (Chebyshev) of the target's edge, on both sides.

    ``targets`` is ``... x H x W`` (bool or float, foreground ``> 0.5``). A pixel is
    in the band when its ``(2 width_px + 1)`` square window holds both foreground
    and background pixels: dilation minus erosion by max-pooling, on the
    tensor's device. The window is clipped at the image border (pixels outside
    the image count as neither), so the image border is not an edge. Same shape
    as ``targets``.
    """
    if width_px < 0:
        raise ValueError(f"boundary width must be >= 0 pixels, got {width_px}")
    shape = targets.shape
    t = (targets > 0.5).float().reshape(-1, 1, *shape[-2:])
    if t.shape[0] == 0 or width_px == 0:
        return torch.zeros(shape, dtype=torch.bool, device=targets.device)
    k = 2 * width_px + 1
    dilated = F.max_pool2d(t, k, stride=1, padding=width_px)
    eroded = -F.max_pool2d(-t, k, stride=1, padding=width_px)
    return (dilated > eroded).reshape(shape)


@_float32
def boundary_weighted_bce(
    logits: torch.Tensor,
    targets: torch.Tensor,
    width_px: int = 3,
    weight: float = 5.0,
    valid: torch.Tensor | None = None,
) -> torch.Tensor:
    """Per-pixel BCE weighted ``1 + weight`` in the target's :func:`edge_band`, 1 elsewhere.

    The result is the weighted mean over the (valid) pixels of each object,
    ``sum(w * bce) / sum(w)``, so a constant per-pixel BCE ``c`` gives ``c`` for any
    ``weight``. The band is computed once per target (``N x H x W`` targets are
    shared by the ``M`` candidates). Returns ``logits.shape[:-2]``.
    """
    _check_logits(logits)
    if weight < 0:
        raise ValueError(f"boundary weight must be >= 0, got {weight}")
    x = logits.float()
    band = _like_logits(edge_band(targets, width_px), x, "targets")
    t = _like_logits(targets, x, "targets")
    w = 1.0 + weight * band
    if valid is not None:
        w = w * _like_logits(valid, x, "valid")
    bce = F.binary_cross_entropy_with_logits(x, t, reduction="none")
    return _spatial_mean(bce, w)


@_float32
def iou_head_loss(pred_iou: torch.Tensor, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Squared error between the IoU head's prediction and the mask's actual IoU.

    ``pred_iou`` has the shape ``logits.shape[:-2]`` (``N`` or ``N x M``). The
    actual IoU is that of ``logits > 0`` with ``targets > 0.5`` at the given
    resolution (1.0 when both are empty), detached: only the IoU head learns from
    this loss. Returns ``logits.shape[:-2]``.
    """
    _check_logits(logits)
    if tuple(pred_iou.shape) != tuple(logits.shape[:-2]):
        raise ValueError(
            f"pred_iou of shape {tuple(pred_iou.shape)} does not match logits of shape {tuple(logits.shape)}"
        )
    with torch.no_grad():
        pred = logits > 0
        gt = _like_logits(targets, logits, "targets") > 0.5
        inter = (pred & gt).sum(dim=(-2, -1)).float()
        union = (pred | gt).sum(dim=(-2, -1)).float()
        actual = torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))
    return (pred_iou.float() - actual) ** 2


@_float32
def resize_targets(masks: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``N x H x W`` bool masks to ``N x h x w`` float soft targets by area averaging.

    Each output pixel is the fraction of its source area covered by the mask
    (``F.interpolate(mode="area")``), with no thresholding, so edges stay soft
    and thin structures are not dropped. Use for losses at the decoder's low-res
    frame; metrics are never computed on these.
    """
    if masks.dim() != 3:
        raise ValueError(f"masks must be N x H x W, got shape {tuple(masks.shape)}")
    h, w = int(size[0]), int(size[1])
    if masks.shape[0] == 0:
        return torch.zeros((0, h, w), dtype=torch.float32, device=masks.device)
    return F.interpolate(masks[:, None].float(), size=(h, w), mode="area")[:, 0]


class PromptableLoss(nn.Module):
    """Weighted Dice + focal + boundary-weighted BCE + IoU-head loss for promptable masks.

    Defaults follow SAM's recipe: ``dice=1``, ``focal=20`` (focal:dice 20:1),
    ``iou=1`` (IoU-head MSE added with weight 1), ``boundary=0`` (off; samlora's
    optional extra). ``focal_alpha``/``focal_gamma`` are those of
    :func:`sigmoid_focal_loss`; ``boundary_width``/``boundary_weight`` those of
    :func:`boundary_weighted_bce`.

    Call with ``logits`` ``N x M x h x w`` (or ``N x h x w``), ``pred_iou`` ``N x M``
    (or ``N``), ``targets`` ``N x h x w`` bool or float in the logits' frame, and
    optionally ``valid`` ``N`` bool (objects to count; e.g. padding objects off).
    With ``M > 1`` each object's mask terms are those of its candidate with the
    lowest weighted mask loss (dice, focal and boundary terms with their
    weights); the IoU term is averaged over all ``M`` candidates. Each term is
    then averaged over the valid objects.

    Returns ``(total, terms)``: ``total`` a float32 scalar with gradient, and
    ``terms`` detached scalars ``loss_dice``, ``loss_focal``, ``loss_boundary``,
    ``loss_iou`` (unweighted means, always present; the boundary term is
    computed without gradient when its weight is 0) and ``loss`` (the total).
    No valid object gives a zero total still attached to the graph.
    """

    def __init__(
        self,
        dice: float = 1.0,
        focal: float = 20.0,
        boundary: float = 0.0,
        iou: float = 1.0,
        focal_alpha: float = 0.25,
        focal_gamma: float = 2.0,
        boundary_width: int = 3,
        boundary_weight: float = 5.0,
    ):
        super().__init__()
        weights = {
            "dice": dice,
            "focal": focal,
            "boundary": boundary,
            "iou": iou,
            "boundary_weight": boundary_weight,
        }
        bad = [f"{k}={v}" for k, v in weights.items() if not v >= 0]
        if boundary_width < 0:
            bad.append(f"boundary_width={boundary_width}")
        if focal_gamma < 0:
            bad.append(f"focal_gamma={focal_gamma}")
        if bad:
            raise ValueError(f"loss weights and widths must be >= 0, got {', '.join(bad)}")
        self.dice, self.focal, self.boundary, self.iou = (
            float(dice),
            float(focal),
            float(boundary),
            float(iou),
        )
        self.focal_alpha, self.focal_gamma = float(focal_alpha), float(focal_gamma)
        self.boundary_width, self.boundary_weight = int(boundary_width), float(boundary_weight)

    def extra_repr(self) -> str:
        return (
            f"dice={self.dice}, focal={self.focal}, boundary={self.boundary}, iou={self.iou}, "
            f"focal_alpha={self.focal_alpha}, focal_gamma={self.focal_gamma}, "
            f"boundary_width={self.boundary_width}, boundary_weight={self.boundary_weight}"
        )

    def _boundary(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return boundary_weighted_bce(logits, targets, self.boundary_width, self.boundary_weight)

    @_float32
    def forward(
        self,
        logits: torch.Tensor,
        pred_iou: torch.Tensor,
        targets: torch.Tensor,
        valid: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if logits.dim() == 3:
            logits = logits[:, None]
            pred_iou = pred_iou.reshape(-1, 1) if pred_iou.dim() == 1 else pred_iou
        _check_logits(logits)
        n, m, h, w = logits.shape
        if tuple(pred_iou.shape) != (n, m):
            raise ValueError(
                f"pred_iou must be N x M = {(n, m)} for logits of shape {tuple(logits.shape)}, got {tuple(pred_iou.shape)}"
            )
        if tuple(targets.shape) != (n, h, w):
            raise ValueError(
                f"targets must be N x h x w = {(n, h, w)} for logits of shape {tuple(logits.shape)}, got {tuple(targets.shape)}"
            )
        x = logits.float()
        t = targets.to(device=x.device, dtype=torch.float32)

        d = dice_loss(x, t)  # N x M
        f = sigmoid_focal_loss(x, t, self.focal_alpha, self.focal_gamma)
        use_b = self.boundary > 0
        b = self._boundary(x, t) if use_b else None
        if m > 1:
            combined = self.dice * d + self.focal * f + (self.boundary * b if use_b else 0)
            best = combined.detach().argmin(dim=1, keepdim=True)  # N x 1
        else:
            best = torch.zeros((n, 1), dtype=torch.long, device=x.device)
        d_sel, f_sel = d.gather(1, best)[:, 0], f.gather(1, best)[:, 0]
        if use_b:
            b_sel = b.gather(1, best)[:, 0]
        else:
            with torch.no_grad():
                chosen = x.detach().gather(1, best[:, :, None, None].expand(n, 1, h, w))[:, 0]
                b_sel = self._boundary(chosen, t)
        i_all = iou_head_loss(pred_iou, x, t).mean(dim=1)

        if valid is None:
            keep = torch.ones(n, dtype=torch.bool, device=x.device)
        else:
            if tuple(valid.shape) != (n,):
                raise ValueError(
                    f"valid must be a bool vector of length N={n}, got shape {tuple(valid.shape)}"
                )
            keep = valid.to(device=x.device, dtype=torch.bool)
        count = keep.sum().clamp(min=1).float()

        def mean(v: torch.Tensor) -> torch.Tensor:
            return torch.where(keep, v, torch.zeros((), device=v.device)).sum() / count

        terms = {
            "loss_dice": mean(d_sel),
            "loss_focal": mean(f_sel),
            "loss_boundary": mean(b_sel),
            "loss_iou": mean(i_all),
        }
        total = (
            self.dice * terms["loss_dice"] + self.focal * terms["loss_focal"] + self.iou * terms["loss_iou"]
        )
        if use_b:
            total = total + self.boundary * terms["loss_boundary"]
        out = {k: v.detach() for k, v in terms.items()}
        out["loss"] = total.detach()
        return total, out
