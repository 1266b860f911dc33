"""Prediction with evaluation prompts and per-object metrics at the original resolution.

Shared by validation during training, ``samlora eval`` and ``samlora predict``:
one code path from prompts to masks. Prompt modes: ``box`` (tight box),
``center_point`` (the interior point farthest from the edge; 3 candidates, the
one with the highest predicted IoU is kept), ``points`` (``eval.num_points``
positive points) and ``clicks`` (a centre click, then correction clicks at the
centre of the largest error region, the previous mask given as a prompt; the
metric is reported after each click).
"""

from __future__ import annotations

import torch
from torch import nn

from samlora.data.clicks import correction_clicks
from samlora.models.loading import LoadedModel
from samlora.models.promptable import Decoded, decode, encode

from .metrics import dice_iou_batch
from .segmenter import DeviceBatch, best_candidate


def first_prompt(model: nn.Module, loaded: LoadedModel, batch: DeviceBatch, mode: str, embeddings) -> Decoded:
    """Decode every object of the batch with the evaluation prompt ``mode``."""
    spec, index = loaded.spec, batch.image_index
    if mode == "box":
        return decode(model, spec, embeddings, index, boxes=batch.exact_boxes)
    if mode in ("center_point", "clicks"):
        labels = torch.ones(batch.num_objects, 1, dtype=torch.int64, device=index.device)
        return decode(model, spec, embeddings, index, points=batch.centers, labels=labels, multimask=True)
    if mode == "points":
        single = batch.points.shape[1] == 1
        return decode(
            model, spec, embeddings, index, points=batch.points, labels=batch.labels, multimask=single
        )
    raise ValueError(f"unknown prompt mode '{mode}'")


def to_original(loaded: LoadedModel, batch: DeviceBatch, low_res: torch.Tensor) -> list[torch.Tensor]:
    """Split ``N x h x w`` logits per image and map each to ``K_i x H_i x W_i`` at the original resolution."""
    out = []
    for i, geom in enumerate(batch.geoms):
        rows = (batch.image_index == i).nonzero().flatten()
        out.append(loaded.preprocessing.logits_to_original(low_res[rows], geom))
    return out


@torch.no_grad()
def predict_rounds(
    model: nn.Module, loaded: LoadedModel, batch: DeviceBatch, mode: str, clicks: int = 1
) -> tuple[list[list[torch.Tensor]], Decoded]:
    """Original-resolution logits per round (one round, or ``clicks`` rounds in clicks mode).

    Returns:
        ``rounds[r][i]``: ``K_i x H_i x W_i`` logits of image ``i`` after round
        ``r``; and the first round's raw decoder output (for the loss).
    """
    embeddings = encode(model, loaded.spec, batch.pixels)
    out = first_prompt(model, loaded, batch, mode, embeddings)
    first = out
    low = best_candidate(out)
    rounds = [to_original(loaded, batch, low)]
    if mode != "clicks":
        return rounds, first
    points = batch.centers
    labels = torch.ones(batch.num_objects, 1, dtype=torch.int64, device=points.device)
    for _ in range(clicks - 1):
        new_points, new_labels = [], []
        for logits, masks, geom in zip(rounds[-1], batch.masks, batch.geoms):
            if masks.shape[0] == 0:
                continue
            pts, lab = correction_clicks(logits > 0, masks, mode="center")
            new_points.append(loaded.preprocessing.coords(pts.to(points.device).float(), geom))
            new_labels.append(lab.to(points.device))
        points = torch.cat([points, torch.cat(new_points)], dim=1)
        labels = torch.cat([labels, torch.cat(new_labels).to(labels.dtype)], dim=1)
        out = decode(
            model, loaded.spec, embeddings, batch.image_index,
            points=points, labels=labels, mask_inputs=low[:, None], multimask=False,
        )  # fmt: skip
        low = best_candidate(out)
        rounds.append(to_original(loaded, batch, low))
    return rounds, first


def object_scores(
    logits: list[torch.Tensor], batch: DeviceBatch, ignores: list[torch.Tensor | None], threshold: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Dice and IoU of every object (``N`` each), crowd regions excluded from both masks."""
    dices, ious = [], []
    for pred_logits, masks, ignore in zip(logits, batch.masks, ignores):
        if masks.shape[0] == 0:
            continue
        pred = pred_logits > threshold
        target = masks
        if ignore is not None:
            keep = ~ignore.to(pred.device)
            pred, target = pred & keep, target & keep
        dice, iou = dice_iou_batch(pred, target)
        dices.append(dice)
        ious.append(iou)
    if not dices:
        empty = torch.zeros(0)
        return empty, empty
    return torch.cat(dices), torch.cat(ious)
