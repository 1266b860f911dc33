"""The promptable task (SAM, SAM-HQ, SAM 2, SAM 3 tracker): one step of training, one of prediction.

Per step every image is encoded once; all its objects (and every correction
click) are decoded from that embedding. Prompts arrive in pixels of the
original image and are mapped into the input frame on the device; targets are
mapped the same way, to the resolution ``loss.resolution`` names.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from samlora.config import Config
from samlora.data.clicks import correction_clicks
from samlora.models.loading import LoadedModel
from samlora.models.preprocess import Geometry, Preprocessing
from samlora.models.promptable import Decoded, ImageEmbeddings, decode, encode

from .data import PAD_LABEL, PromptableSample
from .losses import PromptableLoss


@dataclass
class DeviceBatch:
    """A collated batch on the device; ``N`` objects over ``B`` images.

    Attributes:
        pixels: ``B x 3 x S x S`` model input.
        geoms: where each image lies in the input frame.
        image_index: ``N`` image of each object.
        masks: per image ``K_i x H_i x W_i`` bool targets (original resolution).
        boxes, exact_boxes: ``N x 4`` XYXY in the input frame.
        points: ``N x P x 2`` in the input frame; ``labels`` ``N x P``.
        centers: ``N x 1 x 2`` in the input frame.
        valid: ``N`` bool, objects to learn from (an augmentation may have removed one), or ``None``: all.
    """

    pixels: torch.Tensor
    geoms: list[Geometry]
    image_index: torch.Tensor
    masks: list[torch.Tensor]
    boxes: torch.Tensor
    exact_boxes: torch.Tensor
    points: torch.Tensor
    labels: torch.Tensor
    centers: torch.Tensor
    valid: torch.Tensor | None = None

    @property
    def num_objects(self) -> int:
        return int(self.image_index.numel())


def to_device(samples: list[PromptableSample], pre: Preprocessing, device: torch.device) -> DeviceBatch:
    """Resize/normalise images and map every prompt into the input frame, on ``device``."""
    images = [s.image.to(device, non_blocking=True) for s in samples]
    geoms = [pre.geometry(int(s.image.shape[1]), int(s.image.shape[2])) for s in samples]
    counts = torch.tensor([len(s.masks) for s in samples], device=device)
    boxes, exact, points, centers = [], [], [], []
    for s, g in zip(samples, geoms):
        boxes.append(pre.coords(s.boxes.to(device), g))
        exact.append(pre.coords(s.exact_boxes.to(device), g))
        points.append(pre.coords(s.points.to(device), g))
        centers.append(pre.coords(s.centers.to(device), g))
    width = max((p.shape[1] for p in points), default=0)
    labels = [
        torch.nn.functional.pad(s.labels.to(device), (0, width - s.labels.shape[1]), value=PAD_LABEL)
        for s in samples
    ]
    points = [torch.nn.functional.pad(p, (0, 0, 0, width - p.shape[1])) for p in points]
    return DeviceBatch(
        pixels=pre.images(images, device),
        geoms=geoms,
        image_index=torch.repeat_interleave(torch.arange(len(samples), device=device), counts),
        masks=[s.masks.to(device, non_blocking=True) for s in samples],
        boxes=torch.cat(boxes),
        exact_boxes=torch.cat(exact),
        points=torch.cat(points),
        labels=torch.cat(labels),
        centers=torch.cat(centers)[:, None],
    )


def best_candidate(out: Decoded) -> torch.Tensor:
    """``N x h x w`` logits of the candidate with the highest predicted IoU."""
    pick = out.iou.argmax(dim=1)
    return out.logits[torch.arange(out.logits.shape[0], device=pick.device), pick]


class PromptableSegmenter(nn.Module):
    """A training step's forward as one module call (so DDP sees it): encode once, decode, click.

    ``forward`` returns one :class:`Decoded` per round: the first for the
    initial prompt, then one per correction click (with the previous mask as a
    dense prompt), all from the same image embedding.
    """

    def __init__(self, model: nn.Module, loaded: LoadedModel):
        super().__init__()
        self.model = model
        self.spec = loaded.spec
        self.pre = loaded.preprocessing

    def forward(
        self,
        pixels: torch.Tensor,
        image_index: torch.Tensor,
        boxes: torch.Tensor | None,
        points: torch.Tensor | None,
        labels: torch.Tensor | None,
        multimask: bool,
        clicks: int = 0,
        click_targets: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        embeddings: ImageEmbeddings | None = None,
    ) -> list[Decoded]:
        """``embeddings``: already computed for ``pixels`` (the frozen-encoder cache), else encoded here."""
        embeddings = encode(self.model, self.spec, pixels) if embeddings is None else embeddings
        out = decode(
            self.model,
            self.spec,
            embeddings,
            image_index,
            boxes=boxes,
            points=points,
            labels=labels,
            multimask=multimask,
        )
        rounds = [out]
        low = self.pre.low_res_size
        scale = self.pre.image_size / low
        for _ in range(clicks):
            previous = best_candidate(out).detach()
            targets = click_targets if click_targets.shape[-1] == low else _resize_bool(click_targets, low)
            new_points, new_labels = correction_clicks(previous > 0, targets, generator=generator)
            new_points = new_points.to(previous.device) * scale  # pixel centres scale like any coordinate
            new_labels = new_labels.to(previous.device)
            points = new_points if points is None else torch.cat([points, new_points], dim=1)
            labels = new_labels if labels is None else torch.cat([labels, new_labels.to(labels.dtype)], dim=1)
            out = decode(
                self.model, self.spec, embeddings, image_index,
                boxes=boxes, points=points, labels=labels, mask_inputs=previous[:, None], multimask=False,
            )  # fmt: skip
            rounds.append(out)
        return rounds


def _resize_bool(masks: torch.Tensor, size: int) -> torch.Tensor:
    return torch.nn.functional.interpolate(masks[:, None].float(), size=(size, size), mode="area")[:, 0] > 0.5


class PromptableObjective:
    """Targets at the configured resolution and the weighted loss over all rounds."""

    def __init__(self, cfg: Config, pre: Preprocessing):
        lc = cfg.loss
        self.resolution = lc.resolution
        self.pre = pre
        self.loss = PromptableLoss(
            dice=lc.dice, focal=lc.focal, boundary=lc.boundary, iou=lc.iou,
            focal_alpha=lc.focal_alpha, focal_gamma=lc.focal_gamma,
            boundary_width=lc.boundary_width, boundary_weight=lc.boundary_weight,
        )  # fmt: skip

    def targets(self, batch: DeviceBatch) -> torch.Tensor | None:
        """``N x h x w`` soft targets in the loss frame (``None`` for the original resolution)."""
        if self.resolution == "original":
            return None
        size = self.pre.low_res_size if self.resolution == "low_res" else self.pre.image_size
        parts = [self.pre.masks(m, g, size=size) for m, g in zip(batch.masks, batch.geoms)]
        return torch.cat(parts)

    def __call__(
        self, rounds: list[Decoded], batch: DeviceBatch, targets: torch.Tensor | None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        totals, all_terms = [], []
        for out in rounds:
            total, terms = self._one(out, batch, targets)
            totals.append(total)
            all_terms.append(terms)
        loss = torch.stack(totals).mean()
        merged = {k: torch.stack([t[k] for t in all_terms]).mean().detach() for k in all_terms[0]}
        merged["loss"] = loss.detach()
        return loss, merged

    def _one(
        self, out: Decoded, batch: DeviceBatch, targets: torch.Tensor | None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if self.resolution == "low_res":
            return self.loss(out.logits, out.iou, targets, batch.valid)
        if self.resolution == "input":
            n, m, h, w = out.logits.shape
            logits = self.pre.logits_to_input(out.logits.reshape(n * m, h, w)).reshape(
                n, m, *targets.shape[-2:]
            )
            return self.loss(logits, out.iou, targets, batch.valid)
        totals, terms_list, weights = [], [], []
        start = 0  # objects are grouped by image, in order: image i owns len(batch.masks[i]) rows
        for masks, geom in zip(batch.masks, batch.geoms):
            rows = slice(start, start + int(masks.shape[0]))
            start = rows.stop
            if rows.stop == rows.start:
                continue
            n, m, h, w = out.logits[rows].shape
            logits = self.pre.logits_to_original(out.logits[rows].reshape(n * m, h, w), geom).reshape(
                n, m, geom.height, geom.width
            )
            valid = batch.valid[rows] if batch.valid is not None else None
            total, terms = self.loss(logits, out.iou[rows], masks.float(), valid)
            totals.append(total * n)
            terms_list.append({k: v * n for k, v in terms.items()})
            weights.append(n)
        count = sum(weights)
        merged = {k: sum(t[k] for t in terms_list) / count for k in terms_list[0]}
        return sum(totals) / count, merged
