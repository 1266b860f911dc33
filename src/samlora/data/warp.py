"""Batched augmentation on the model's device: one resampling per batch into the input frame.

Each image of a batch comes with an :class:`~samlora.data.transforms.AugmentPlan` drawn on the
CPU (its flips, rotation, zoom, crop and colour steps). :func:`warp_batch` applies all of them
at once: one ``grid_sample`` reads every output pixel of the ``S x S`` input frame from the
source images (bilinear for pixels, nearest for label layers), so the geometric steps and the
resize into the frame cost one pass together, then the colour steps run batched on the frame.

The augmented ``h x w`` image lies in the frame as the family's preprocessing puts any image
there (:class:`~samlora.data.frame.Frame`): ``longest_side`` scales it so its longest side is
``S`` and leaves padding at the bottom/right; ``square`` stretches it to ``S x S``. Pixels the
plan maps outside the source (a zoomed-out image's canvas) are black and belong to no object.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .frame import Frame
from .transforms import AugmentPlan

_GRAY = (0.299, 0.587, 0.114)


@dataclass
class WarpedBatch:
    """A batch in the input frame.

    Attributes:
        pixels: ``B x 3 x S x S`` float in ``[0, 255]`` (0 outside ``region``).
        labels: ``B x L x S x S`` long label layers (``L``: the batch's most; 0 = no object).
        region: ``B x S x S`` bool, where each augmented image lies in the frame.
        extent: per image ``(rh, rw)``, the size of that region (top-left aligned).
        scale: per image, frame pixels per source pixel along ``x`` (for pixel-sized settings).
    """

    pixels: torch.Tensor
    labels: torch.Tensor
    region: torch.Tensor
    extent: list[tuple[int, int]]
    scale: list[float]


def frame_extent(frame: Frame, height: int, width: int) -> tuple[int, int]:
    """``(rh, rw)``: where an ``height x width`` image lies in the frame (the model's rounding)."""
    if frame.resize == "square":
        return frame.size, frame.size
    scale = frame.size / max(height, width)
    return int(height * scale + 0.5), int(width * scale + 0.5)


def _padded(tensors: list[torch.Tensor], device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """``B x C x H x W`` with each ``C_i x h_i x w_i`` top-left, its last row/column repeated once."""
    channels = max(t.shape[0] for t in tensors)
    height = max(t.shape[-2] for t in tensors) + 1
    width = max(t.shape[-1] for t in tensors) + 1
    out = torch.zeros(len(tensors), channels, height, width, device=device, dtype=dtype)
    for i, t in enumerate(tensors):
        c, h, w = t.shape
        t = t.to(device, non_blocking=True)
        out[i, :c, :h, :w] = t
        out[i, :c, h, :w] = t[:, -1]  # bilinear reads past the last pixel centre see the edge
        out[i, :c, : h + 1, w] = out[i, :c, : h + 1, w - 1]
    return out


def warp_batch(
    images: list[torch.Tensor],
    labels: list[torch.Tensor],
    plans: list[AugmentPlan],
    frame: Frame,
    device: torch.device | str,
) -> WarpedBatch:
    """Apply each image's plan and place it in the frame, all images in one pass.

    Args:
        images: ``3 x h_i x w_i`` uint8 source images.
        labels: ``L_i x h_i x w_i`` integer label layers of the same images.
        plans: one per image (``AugmentPlan.identity`` for none).
        frame: the model's input frame.
    """
    device = torch.device(device)
    size = frame.size
    extent, matrices, scale = [], [], []
    for plan in plans:
        h, w = plan.size
        rh, rw = frame_extent(frame, h, w)
        extent.append((rh, rw))
        frame_to_plan = torch.tensor(
            [[w / rw, 0.0, 0.0], [0.0, h / rh, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64
        )
        m = torch.as_tensor(plan.matrix, dtype=torch.float64) @ frame_to_plan
        matrices.append(m)
        scale.append(float(abs(torch.linalg.det(m[:2, :2])) ** -0.5))  # frame pixels per source pixel
    matrix = torch.stack(matrices).to(device=device, dtype=torch.float32)  # B x 2 x 3: frame -> source
    centres = torch.arange(size, device=device, dtype=torch.float32) + 0.5
    ys, xs = torch.meshgrid(centres, centres, indexing="ij")
    base = torch.stack([xs, ys, torch.ones_like(xs)], dim=-1)  # S x S x 3
    source = torch.einsum("bij,yxj->byxi", matrix, base)  # B x S x S x 2, source pixel coordinates
    rows = torch.arange(size, device=device)
    bounds = torch.tensor(extent, device=device)
    region = (rows[None, :, None] < bounds[:, 0, None, None]) & (
        rows[None, None, :] < bounds[:, 1, None, None]
    )
    sizes = torch.tensor(
        [[int(i.shape[-1]), int(i.shape[-2])] for i in images], device=device, dtype=torch.float32
    )
    inside = ((source >= 0) & (source < sizes[:, None, None, :])).all(dim=-1) & region
    src = _padded(images, device, torch.float32)
    grid = source / torch.tensor([src.shape[-1], src.shape[-2]], device=device, dtype=torch.float32) * 2 - 1
    pixels = F.grid_sample(src, grid, mode="bilinear", padding_mode="border", align_corners=False)
    pixels = pixels.clamp_(0, 255).mul_(inside[:, None])
    lab = _padded(labels, device, torch.float32)
    warped = F.grid_sample(lab, grid, mode="nearest", padding_mode="zeros", align_corners=False)
    warped = warped.mul_(inside[:, None]).long()
    pixels = colour_batch(pixels, region, [p.colour for p in plans])
    return WarpedBatch(pixels=pixels, labels=warped, region=region, extent=extent, scale=scale)


def colour_batch(
    pixels: torch.Tensor, region: torch.Tensor, steps: list[list[tuple[str, float]]]
) -> torch.Tensor:
    """Run each image's colour steps (in its own order) on ``B x 3 x S x S`` pixels in ``[0, 255]``,
    in place (``pixels`` is returned).

    Semantics of torchvision's jitter: brightness scales; contrast blends with the mean gray of
    the image's region; saturation blends with each pixel's gray; hue rotates the HSV hue by a
    fraction of the circle. Images whose ``j``-th step is the same kind run together; when only
    some images of the batch have it, each of them runs on its own view (no gather, no scatter).
    """
    depth = max((len(s) for s in steps), default=0)
    for j in range(depth):
        kinds: dict[str, list[int]] = {}
        for b, s in enumerate(steps):
            if j < len(s):
                kinds.setdefault(s[j][0], []).append(b)
        for kind, members in kinds.items():
            if len(members) == pixels.shape[0]:
                value = torch.tensor(
                    [steps[b][j][1] for b in members], device=pixels.device, dtype=pixels.dtype
                )
                _colour_step(pixels, region, kind, value.view(-1, 1, 1, 1))
            else:
                for b in members:
                    value = torch.full((1, 1, 1, 1), steps[b][j][1], device=pixels.device, dtype=pixels.dtype)
                    _colour_step(pixels[b : b + 1], region[b : b + 1], kind, value)
    return pixels


def _colour_step(x: torch.Tensor, region: torch.Tensor, kind: str, value: torch.Tensor) -> None:
    """One colour step on ``N x 3 x S x S`` pixels in place; ``value``: ``N x 1 x 1 x 1``."""
    inside = region[:, None]
    if kind == "brightness":
        x.mul_(value)
    elif kind == "contrast":
        weight = inside.to(x.dtype)
        mean = (_gray(x) * weight).sum(dim=(1, 2, 3), keepdim=True) / weight.sum(dim=(1, 2, 3), keepdim=True)
        x.mul_(value).add_((1 - value) * mean)
    elif kind == "saturation":
        gray = _gray(x)
        x.mul_(value).add_((1 - value) * gray)
    else:
        x.copy_(_shift_hue(x, value))
    x.clamp_(0, 255).mul_(inside)


def _gray(x: torch.Tensor) -> torch.Tensor:
    """``N x 1 x H x W`` luma of ``N x 3 x H x W`` RGB."""
    r, g, b = x[:, 0:1], x[:, 1:2], x[:, 2:3]
    return (r * _GRAY[0]).add_(g, alpha=_GRAY[1]).add_(b, alpha=_GRAY[2])


def _shift_hue(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Rotate the hue of ``N x 3 x H x W`` RGB in ``[0, 255]`` by ``shift`` (``N x 1 x 1 x 1``) turns.

    HSV keeps the largest channel and the chroma (largest minus smallest); only the hue moves.
    """
    r, g, b = x.unbind(dim=1)
    high = torch.maximum(torch.maximum(r, g), b)
    chroma = high - torch.minimum(torch.minimum(r, g), b)
    # the hue in sixths of a turn, from the largest channel: r: (g - b) / c; g: 2 + (b - r) / c; b: 4 + (r - g) / c
    sixths = torch.where(
        high == r, g - b, torch.where(high == g, (b - r).add_(chroma, alpha=2), (r - g).add_(chroma, alpha=4))
    )
    sixths = sixths.div_(chroma.clamp(min=1e-6)).add_(shift[:, 0] * 6).remainder_(6)  # gray: any hue
    k = (sixths[:, None] + torch.tensor([5.0, 3.0, 1.0], device=x.device).view(1, 3, 1, 1)).remainder_(6)
    ramp = torch.minimum(k, 4 - k).clamp_(0, 1)
    return high[:, None] - chroma[:, None] * ramp
