"""Batched preprocessing on the model's device, and the exact way back.

Images arrive as uint8 ``3 x H x W`` tensors of any size. Each family was
trained with one of two resizes to its square input of side ``S``:

* ``longest_side`` (SAM, SAM-HQ): scale so the longest side is ``S``, keep the
  aspect ratio, pad bottom and right with zeros (after normalisation);
* ``square`` (SAM 2, SAM 3): resize both sides to ``S``.

Prompt coordinates are ``XY`` pixels of the original image, boxes ``XYXY``; the
same per-image scale maps them into the input frame. Predicted logits are mapped
back by upsampling to ``S x S``, cropping the padding and resizing to the
original ``H x W`` (as segment-anything's ``postprocess_masks`` does), so masks
and metrics are always at the original resolution.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from samlora.data.frame import Frame
from samlora.data.warp import WarpedBatch, warp_batch

from .families import FamilySpec


@dataclass(frozen=True)
class Geometry:
    """Where an original ``height x width`` image lies in the ``S x S`` input.

    ``resized_h x resized_w`` is the image's extent in the input frame; the rest
    is padding (``longest_side``) or nothing (``square``).
    """

    height: int
    width: int
    resized_h: int
    resized_w: int

    @property
    def scale_xy(self) -> tuple[float, float]:
        """Factors mapping original ``x`` and ``y`` to the input frame."""
        return self.resized_w / self.width, self.resized_h / self.height


@dataclass(frozen=True)
class Preprocessing:
    """Input size, resize mode and normalisation of a model family."""

    image_size: int
    resize: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    low_res_size: int

    @classmethod
    def for_model(cls, config: object, spec: FamilySpec) -> Preprocessing:
        """Read the input size from a transformers config of family ``spec``."""
        if spec.task == "concept":
            size = config.vision_config.image_size
            size = size[0] if isinstance(size, (list, tuple)) else size
            backbone = config.vision_config.backbone_config
            patch = (
                backbone.patch_size[0]
                if isinstance(backbone.patch_size, (list, tuple))
                else backbone.patch_size
            )
            low = 4 * (size // patch)
        else:
            prompt_cfg = config.prompt_encoder_config
            size = prompt_cfg.image_size
            size = size[0] if isinstance(size, (list, tuple)) else size
            patch = prompt_cfg.patch_size
            patch = patch[0] if isinstance(patch, (list, tuple)) else patch
            low = 4 * (size // patch)
        return cls(
            image_size=int(size), resize=spec.resize, mean=spec.mean, std=spec.std, low_res_size=int(low)
        )

    @property
    def frame(self) -> Frame:
        """The input frame training decodes images into (see :mod:`samlora.data.frame`)."""
        return Frame(self.image_size, self.resize)

    def geometry(self, height: int, width: int) -> Geometry:
        """Placement of an ``height x width`` image in the input frame."""
        if self.resize == "square":
            return Geometry(height, width, self.image_size, self.image_size)
        scale = self.image_size / max(height, width)
        return Geometry(height, width, max(1, int(height * scale + 0.5)), max(1, int(width * scale + 0.5)))

    def images(self, images: list[torch.Tensor], device: torch.device | str | None = None) -> torch.Tensor:
        """Resize, normalise and pad a list of uint8 ``3 x H_i x W_i`` images.

        Images of the same size are stacked and resized in one batched call on ``device``.

        Returns:
            ``B x 3 x S x S`` float32 pixel values on ``device`` (default: the
            first image's device). Padding is zero after normalisation.
        """
        device = device if device is not None else images[0].device
        size = self.image_size
        out = torch.zeros(len(images), 3, size, size, device=device, dtype=torch.float32)
        mean = torch.tensor(self.mean, device=device).view(1, 3, 1, 1) * 255.0
        std = torch.tensor(self.std, device=device).view(1, 3, 1, 1) * 255.0
        groups: dict[tuple[int, int], list[int]] = {}
        for i, image in enumerate(images):
            groups.setdefault((int(image.shape[-2]), int(image.shape[-1])), []).append(i)
        for (height, width), members in groups.items():
            geom = self.geometry(height, width)
            batch = torch.stack([images[i] for i in members]).to(device, non_blocking=True)
            resized = self._resize(batch, geom)
            out[members, :, : geom.resized_h, : geom.resized_w] = (resized - mean) / std
        return out

    def warped(
        self, images: list[torch.Tensor], labels: list[torch.Tensor], plans: list, device: torch.device
    ) -> tuple[torch.Tensor, WarpedBatch]:
        """Augment training images by their plans into the input frame, on ``device``, in one pass.

        Returns ``B x 3 x S x S`` normalised pixel values (zero outside each image's region) and the
        :class:`~samlora.data.warp.WarpedBatch` (label layers, regions, extents, scales).
        """
        warped = warp_batch(images, labels, plans, self.frame, device)
        mean = torch.tensor(self.mean, device=device).view(1, 3, 1, 1) * 255.0
        std = torch.tensor(self.std, device=device).view(1, 3, 1, 1) * 255.0
        return (warped.pixels - mean) / std * warped.region[:, None], warped

    @staticmethod
    def _resize(images: torch.Tensor, geom: Geometry) -> torch.Tensor:
        """Bilinear (antialiased when shrinking) resize of ``N x 3 x H x W`` images to float32."""
        images = images.float()
        if (geom.resized_h, geom.resized_w) == tuple(images.shape[-2:]):
            return images
        shrinking = geom.resized_h < images.shape[-2] or geom.resized_w < images.shape[-1]
        out = F.interpolate(
            images,
            size=(geom.resized_h, geom.resized_w),
            mode="bilinear",
            align_corners=False,
            antialias=shrinking,
        )
        return out.clamp_(0, 255)

    def coords(self, xy: torch.Tensor, geom: Geometry) -> torch.Tensor:
        """Map ``... x 2`` (or ``... x 4`` boxes) original pixel coordinates into the input frame."""
        sx, sy = geom.scale_xy
        scale = torch.tensor([sx, sy] * (xy.shape[-1] // 2), dtype=xy.dtype, device=xy.device)
        return xy * scale

    def coords_back(self, xy: torch.Tensor, geom: Geometry) -> torch.Tensor:
        """Inverse of :meth:`coords`."""
        sx, sy = geom.scale_xy
        scale = torch.tensor([sx, sy] * (xy.shape[-1] // 2), dtype=xy.dtype, device=xy.device)
        return xy / scale

    def masks(self, masks: torch.Tensor, geom: Geometry, size: int | None = None) -> torch.Tensor:
        """Map ``N x H x W`` masks (bool or float) into the input frame, then to ``size``.

        Returns ``N x size x size`` float in [0, 1] (area-averaged, not
        thresholded), padding zero. ``size`` defaults to the input size ``S``.
        """
        size = size or self.image_size
        frame = torch.zeros(masks.shape[0], self.image_size, self.image_size, device=masks.device)
        if masks.shape[0] and tuple(masks.shape[-2:]) == (geom.resized_h, geom.resized_w):
            frame[:, : geom.resized_h, : geom.resized_w] = masks  # in the frame already: no resize
        elif masks.shape[0]:
            resized = F.interpolate(
                masks[:, None].float(), size=(geom.resized_h, geom.resized_w), mode="bilinear", antialias=True
            )[:, 0]
            frame[:, : geom.resized_h, : geom.resized_w] = resized.clamp_(0, 1)
        if size != self.image_size:
            frame = F.interpolate(frame[:, None], size=(size, size), mode="area")[:, 0]
        return frame

    def logits_to_original(self, logits: torch.Tensor, geom: Geometry) -> torch.Tensor:
        """Map ``N x h x w`` low-resolution logits to ``N x H x W`` at the original resolution."""
        if logits.shape[0] == 0:
            return logits.new_zeros(0, geom.height, geom.width)
        x = logits[:, None].float()
        x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False)
        x = x[..., : geom.resized_h, : geom.resized_w]
        x = F.interpolate(x, size=(geom.height, geom.width), mode="bilinear", align_corners=False)
        return x[:, 0]

    def logits_to_input(self, logits: torch.Tensor) -> torch.Tensor:
        """Upsample ``N x h x w`` logits to the ``N x S x S`` input frame."""
        size = (self.image_size, self.image_size)
        return F.interpolate(logits[:, None].float(), size=size, mode="bilinear", align_corners=False)[:, 0]
