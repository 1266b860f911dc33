"""Inputs of the Predictor: images (numpy, torch, PIL, paths) and box/point prompts, checked and clipped."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from samlora.errors import PromptError

log = logging.getLogger("samlora.predict.predictor")
__all__ = ["as_float", "as_image", "clip_boxes", "shrink", "to_cpu"]


def as_image(image: object) -> torch.Tensor:
    """``3 x H x W`` uint8 tensor from an image.

    Accepts a path, a PIL image, or a uint8 numpy array / torch tensor shaped
    ``H x W`` (grey), ``H x W x C`` or (torch only) ``C x H x W`` with ``C`` 1
    (grey), 3 (RGB) or 4 (RGBA, alpha dropped). Float images are refused for
    numpy and torch alike: scale them to 0..255 and cast to uint8 first.
    """
    if isinstance(image, (str, Path)):
        from samlora.data.images import load_image

        image = load_image(Path(image))
    if hasattr(image, "convert") and not isinstance(image, (np.ndarray, torch.Tensor)):
        image = np.asarray(image.convert("RGB"))
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8:
            raise PromptError(f"images must be uint8 (got numpy {image.dtype}); scale them to 0..255 first")
        image = torch.from_numpy(np.require(image, requirements=["C", "W"]))
    if not isinstance(image, torch.Tensor):
        raise PromptError(
            f"cannot read an image from {type(image).__name__}; pass an H x W x 3 uint8 array, a tensor or a path"
        )
    if image.dtype != torch.uint8:
        raise PromptError(
            f"images must be uint8 (got torch {image.dtype}); a 0..1 float image needs "
            "(image * 255).round().to(torch.uint8) first"
        )
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim == 3 and image.shape[-1] not in (1, 3, 4) and image.shape[0] in (1, 3, 4):
        image = image.permute(1, 2, 0)  # C x H x W -> H x W x C
    if image.ndim != 3 or image.shape[-1] not in (1, 3, 4):
        raise PromptError(
            f"cannot read an image of shape {tuple(image.shape)}; pass H x W, H x W x 3 (or x 4) or 3 x H x W"
        )
    return image[..., :3].expand(-1, -1, 3).permute(2, 0, 1).contiguous()


def clip_boxes(boxes: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Clip ``N x 4`` XYXY boxes to the image, warning when a box reached outside it.

    A box that is inverted, or that lies entirely outside the image (nothing
    left after clipping), is refused with a :class:`PromptError` naming it.
    """
    limit = torch.tensor([width, height, width, height], dtype=boxes.dtype)
    clipped = torch.minimum(boxes.clamp(min=0), limit)
    for box, cut in zip(boxes.tolist(), clipped.tolist()):
        if box[2] < box[0] or box[3] < box[1]:
            raise PromptError(f"box {box} is inverted; give x1 y1 x2 y2 with x1 <= x2 and y1 <= y2")
        if cut[2] <= cut[0] or cut[3] <= cut[1]:
            raise PromptError(
                f"box {box} lies outside the {width}x{height} image (nothing left after clipping); "
                "give boxes in pixels of the original image"
            )
    if not torch.equal(clipped, boxes):
        log.warning(
            "box(es) %s reach outside the %dx%d image; clipped to %s",
            boxes.tolist(),
            width,
            height,
            clipped.tolist(),
        )
    return clipped


def to_cpu(value: object) -> object:
    return value.detach().cpu() if isinstance(value, torch.Tensor) else value


def as_float(value: object, name: str) -> torch.Tensor:
    try:
        return torch.as_tensor(np.asarray(to_cpu(value), dtype=np.float32))
    except (ValueError, TypeError) as err:
        raise PromptError(f"{name} must be numbers in pixels ({err})") from None


def shrink(image: torch.Tensor, max_side: int) -> torch.Tensor:
    """A ``3 x H x W`` uint8 image shrunk (antialiased) so its longest side is at most ``max_side``."""
    h, w = image.shape[-2:]
    if not max_side or max(h, w) <= max_side:
        return image
    s = max_side / max(h, w)
    size = (max(1, round(h * s)), max(1, round(w * s)))
    small = F.interpolate(
        image[None].float(), size=size, mode="bilinear", antialias=True, align_corners=False
    )
    return small[0].round().clamp(0, 255).to(torch.uint8)
