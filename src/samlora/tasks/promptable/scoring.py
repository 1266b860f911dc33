"""Prediction with evaluation prompts and per-object metrics at the original resolution.

Shared by validation during training, ``samlora eval`` and ``samlora predict``:
one code path from prompts to masks. Prompt modes: ``box`` (tight box),
``center_point`` (the interior point farthest from the edge; 3 candidates, the
one with the highest predicted IoU is kept), ``points`` (``eval.num_points``
positive points) and ``clicks`` (the interactive protocol of :func:`click_rounds`:
a centre click, then correction clicks at the centre of the largest error region,
the previous mask given as a prompt; the metric is reported after each click, and
:func:`clicks_to_reach` gives NoC@85 / NoC@90).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
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


@dataclass
class ClickRounds:
    """The interactive protocol on one batch: masks and clicks after each of ``R`` clicks.

    Attributes:
        logits: ``logits[r][i]`` is ``K_i x H_i x W_i`` original-resolution logits of image ``i``
            after click ``r + 1``.
        points: per image, ``K_i x R x 2`` float XY of every click in pixels of the original image
            (pixel centres; ``(0, 0)`` for a padding click).
        labels: per image, ``K_i x R`` int64: 1 positive, 0 negative, :data:`PAD_LABEL` when the
            previous mask had no error left (no click).
        first: the first click's raw decoder output (for the validation loss).
    """

    logits: list[list[torch.Tensor]]
    points: list[torch.Tensor]
    labels: list[torch.Tensor]
    first: Decoded


def _rows(batch: DeviceBatch) -> list[torch.Tensor]:
    """Per image, the indices of its objects among the batch's ``N``."""
    return [(batch.image_index == i).nonzero().flatten() for i in range(len(batch.geoms))]


@torch.no_grad()
def click_rounds(
    model: nn.Module,
    loaded: LoadedModel,
    batch: DeviceBatch,
    clicks: int,
    ignores: list[torch.Tensor | None] | None = None,
    threshold: float = 0.0,
    feed_mask: bool = True,
) -> ClickRounds:
    """The standard interactive evaluation (RITM, SAM's and SAM 2's 1/3/5-click figures), deterministic.

    Click 1 is each object's interior point farthest from its boundary (best of 3 candidates by
    predicted IoU); click ``r + 1`` goes to the deepest pixel of the largest error of the mask after
    click ``r`` (:func:`~samlora.data.clicks.correction_clicks` in ``center`` mode, at the original
    resolution, crowd regions in ``ignores`` never clicked): positive in a missed region, negative in
    a false one. Every click so far is given each time, with the previous low-resolution mask as the
    mask prompt where the family takes one and ``feed_mask`` is set. One image embedding serves
    every click.
    """
    spec, pre = loaded.spec, loaded.preprocessing
    embeddings = encode(model, spec, batch.pixels)
    first = first_prompt(model, loaded, batch, "clicks", embeddings)
    low = best_candidate(first)
    logits = [to_original(loaded, batch, low)]
    rows = _rows(batch)
    device = batch.centers.device
    points = [pre.coords_back(batch.centers[r], g) for r, g in zip(rows, batch.geoms)]  # K_i x 1 x 2
    labels = [torch.ones(len(r), 1, dtype=torch.int64, device=device) for r in rows]
    feed_mask = feed_mask and "mask" in spec.prompt_types
    for _ in range(clicks - 1):
        for i, masks in enumerate(batch.masks):
            ignore = ignores[i] if ignores is not None else None
            pts, lab = correction_clicks(logits[-1][i] > threshold, masks, mode="center", ignore=ignore)
            points[i] = torch.cat([points[i], pts.to(device)], dim=1)
            labels[i] = torch.cat([labels[i], lab.to(device)], dim=1)
        frame = torch.cat([pre.coords(p, g) for p, g in zip(points, batch.geoms)])
        out = decode(
            model, spec, embeddings, batch.image_index, points=frame, labels=torch.cat(labels),
            mask_inputs=low[:, None] if feed_mask else None, multimask=False,
        )  # fmt: skip
        low = best_candidate(out)
        logits.append(to_original(loaded, batch, low))
    return ClickRounds(logits, points, labels, first)


@torch.no_grad()
def predict_rounds(
    model: nn.Module,
    loaded: LoadedModel,
    batch: DeviceBatch,
    mode: str,
    clicks: int = 1,
    ignores: list[torch.Tensor | None] | None = None,
    threshold: float = 0.0,
    feed_mask: bool = True,
) -> tuple[list[list[torch.Tensor]], Decoded]:
    """Original-resolution logits per round (one round, or ``clicks`` rounds in clicks mode).

    Returns:
        ``rounds[r][i]``: ``K_i x H_i x W_i`` logits of image ``i`` after round
        ``r``; and the first round's raw decoder output (for the loss). Clicks mode is
        :func:`click_rounds`.
    """
    if mode == "clicks":
        session = click_rounds(model, loaded, batch, clicks, ignores, threshold, feed_mask)
        return session.logits, session.first
    embeddings = encode(model, loaded.spec, batch.pixels)
    out = first_prompt(model, loaded, batch, mode, embeddings)
    return [to_original(loaded, batch, best_candidate(out))], out


def clicks_to_reach(ious: np.ndarray, threshold: float) -> np.ndarray:
    """NoC: per object, the clicks needed to reach IoU ``threshold`` (1-based), capped at ``N``.

    Args:
        ious: ``K x N`` IoU of each object after click 1..N.
        threshold: e.g. 0.85 for NoC@85.

    Returns:
        ``K`` int64: the first click whose IoU is at least ``threshold``, or ``N`` for an object
        that never reaches it (the convention of RITM and SAM's interactive benchmarks).
    """
    ious = np.asarray(ious, dtype=np.float64)
    if ious.ndim != 2:
        raise ValueError(f"clicks_to_reach: ious must be K x N, got shape {ious.shape}")
    reached = ious >= threshold
    return np.where(reached.any(axis=1), reached.argmax(axis=1) + 1, ious.shape[1]).astype(np.int64)


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
