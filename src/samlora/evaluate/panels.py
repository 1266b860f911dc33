"""Panels of the best and worst images: image | ground truth | each adapter | vanilla, prompts drawn.

For every data set and every adapter (the vanilla base when no adapter is evaluated), the
``eval.panels`` images that adapter segments worst and best (per-image Dice) are drawn with every
model side by side, each tile titled with its Dice. The prompt is drawn as the model was given it:
the box outline, or numbered clicks (green positive, red negative; in clicks mode each model's own
correction clicks). Files: ``panels/<data set>/<ranking model>/<worst|best>_<rank>_<image>.png``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from samlora.config import Config
from samlora.models.device import autocast_for
from samlora.models.loading import LoadedModel
from samlora.tasks.promptable.data import PromptableDataset, PromptableSample
from samlora.tasks.promptable.scoring import click_rounds, predict_rounds
from samlora.tasks.promptable.segmenter import to_device

from .compare import BASE
from .draw import PANEL_HEIGHT, draw_prompts, overlay, panel, to_height
from .promptable import ObjectResult, per_image
from .rows import active


def _safe(text: str) -> str:
    return str(Path(text).with_suffix("")).replace("/", "_").replace("\\", "_")


@torch.no_grad()
def predict_drawn(
    model: torch.nn.Module, loaded: LoadedModel, sample: PromptableSample, cfg: Config, device, precision: str
) -> tuple[np.ndarray, dict]:
    """One image's predicted ``K x H x W`` masks and its prompts as :func:`draw_prompts` takes them."""
    ev = cfg.eval
    batch = to_device([sample], loaded.preprocessing, device)
    with autocast_for(device, precision):
        if ev.prompt == "clicks":
            run = click_rounds(
                model, loaded, batch, ev.clicks, [sample.ignore], ev.mask_threshold, ev.feed_mask
            )
            logits = run.logits[-1][0]
            prompts = {"points": run.points[0].cpu().numpy(), "point_labels": run.labels[0].cpu().numpy()}
        else:
            rounds, _ = predict_rounds(model, loaded, batch, ev.prompt, ev.clicks)
            logits = rounds[-1][0]
            prompts = shared_prompts(sample, ev.prompt)
    return (logits > ev.mask_threshold).cpu().numpy(), prompts


def _scaled(prompts: dict, scale: float) -> dict:
    """Prompt coordinates (boxes, points) multiplied by ``scale``; labels unchanged."""
    return {k: v * scale if k in ("boxes", "points") else v for k, v in prompts.items()}


def shared_prompts(sample: PromptableSample, prompt: str) -> dict:
    """The prompts every model gets for ``sample`` (box, centre click, points); none in clicks mode,
    where each model's own clicks are drawn on its tile."""
    if prompt == "box":
        return {"boxes": sample.exact_boxes.numpy()}
    if prompt in ("center_point", "clicks"):
        k = len(sample.centers)
        return {"points": sample.centers.numpy()[:, None], "point_labels": np.ones((k, 1))}
    return {"points": sample.points.numpy(), "point_labels": sample.labels.numpy()}


def draw_panels(
    model: torch.nn.Module,
    loaded: LoadedModel,
    cfg: Config,
    results: list[ObjectResult],
    rows: list[str],
    labels: list[str],
    columns: list[str],
    splits: list[PromptableDataset],
    out: Path,
    device,
    precision: str,
) -> list[dict]:
    """Write the panels; return one record per file (data set, ranking model, kind, rank, image, file)."""
    written: list[dict] = []
    rankers = labels or [BASE]
    shown = labels + ([BASE] if BASE in rows else [])
    for col, dataset in zip(columns, splits):
        index = {rec.file_name: i for i, rec in enumerate(dataset.split.images)}
        dice = {row: per_image([r for r in results if r.model == row and r.dataset == col]) for row in shown}
        cache: dict[tuple[str, str], tuple[np.ndarray, dict]] = {}
        for ranked_by in rankers:
            scores = dice[ranked_by]
            order = sorted(scores, key=lambda image: (scores[image]["dice"], image))
            n = min(cfg.eval.panels, len(order))
            for kind, images in (("worst", order[:n]), ("best", order[::-1][:n])):
                for rank, image in enumerate(images, start=1):
                    sample = dataset[index[image]]
                    picture = np.ascontiguousarray(sample.image.permute(1, 2, 0).numpy())
                    scale = PANEL_HEIGHT / picture.shape[0]  # drawn at the size shown
                    picture = to_height(picture)
                    common = _scaled(shared_prompts(sample, cfg.eval.prompt), scale)
                    tiles = [
                        ("image", draw_prompts(picture, **common)),
                        ("ground truth", overlay(picture, to_height(sample.masks.numpy()))),
                    ]
                    for row in shown:
                        if (row, image) not in cache:
                            with active(model, row, labels):
                                cache[(row, image)] = predict_drawn(
                                    model, loaded, sample, cfg, device, precision
                                )
                        masks, prompts = cache[(row, image)]
                        title = f"{row}  Dice {dice[row][image]['dice']:.3f}"
                        drawn = overlay(picture, to_height(masks))
                        tiles.append((title, draw_prompts(drawn, **_scaled(prompts, scale))))
                    relative = (
                        Path("panels") / col / _safe(ranked_by) / f"{kind}_{rank:02d}_{_safe(image)}.png"
                    )
                    panel(tiles, path=out / relative)
                    written.append(
                        {"dataset": col, "ranked_by": ranked_by, "kind": kind, "rank": rank, "image": image,
                         "file": relative.as_posix()}
                    )  # fmt: skip
    return written
