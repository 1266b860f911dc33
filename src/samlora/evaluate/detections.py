"""Concept (text prompt) reports: panels of the detections and the page's figures.

A panel shows image (titled with the text prompts every image got) | ground truth | each model's
detections scoring at least ``eval.score_threshold``, each with its box and a ``prompt score``
label. The ``eval.panels`` images with the most ground-truth objects are drawn (ties by name).
Files: ``panels/<data set>/<image>.png``.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
from pycocotools import mask as mask_utils

from .draw import overlay, palette, panel, to_height
from .plots import ap_bars, pr_curves


def _masks(anns: list[dict]) -> np.ndarray | None:
    if not anns:
        return None
    return np.stack([mask_utils.decode(a["segmentation"]).astype(bool) for a in anns])


def _tile(
    picture: np.ndarray, anns: list[dict], names: dict[int, str], colours: dict[int, tuple], scored: bool
) -> np.ndarray:
    """Masks coloured by category, each with its box and label (``name`` or ``name score``), drawn at
    the panel's height (``picture`` is already resized to it)."""
    masks = _masks(anns)
    if masks is None:
        return picture
    scale = picture.shape[0] / masks.shape[1]
    masks = to_height(masks, picture.shape[0])
    boxes = scale * np.array(
        [[a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3]] for a in anns]
    )
    labels = [
        f"{names.get(a['category_id'], a['category_id'])}" + (f" {a['score']:.2f}" if scored else "")
        for a in anns
    ]
    return overlay(picture, masks, [colours[a["category_id"]] for a in anns], boxes=boxes, labels=labels)


def concept_panels(
    dataset,
    column: str,
    ground_truth: dict,
    detections: dict[str, list[dict]],
    score_threshold: float,
    count: int,
    out: Path,
) -> list[dict]:
    """Write the panels of one data set; ``detections`` maps each model to its COCO results."""
    names = {c["id"]: c["name"] for c in ground_truth["categories"]}
    colours = dict(zip(sorted(names), palette(len(names))))
    gt_by_image: dict = defaultdict(list)
    for ann in ground_truth["annotations"]:
        if not ann.get("iscrowd"):
            gt_by_image[ann["image_id"]].append(ann)
    images = sorted(
        ground_truth["images"], key=lambda im: (-len(gt_by_image[im["id"]]), str(im["file_name"]))
    )
    index = {rec.file_name: i for i, rec in enumerate(dataset.split.images)}
    prompts = ", ".join(names[k] for k in sorted(names))
    written = []
    for image in images[:count]:
        sample = dataset[index[image["file_name"]]]
        picture = to_height(np.ascontiguousarray(sample.image.permute(1, 2, 0).numpy()))
        gt = gt_by_image[image["id"]]
        tiles = [
            (f"prompts: {prompts}", picture),
            (f"ground truth ({len(gt)})", _tile(picture, gt, names, colours, False)),
        ]
        for row, results in detections.items():
            found = [r for r in results if r["image_id"] == image["id"] and r["score"] >= score_threshold]
            tiles.append(
                (
                    f"{row} ({len(found)} at score >= {score_threshold:g})",
                    _tile(picture, found, names, colours, True),
                )
            )
        safe = str(Path(image["file_name"]).with_suffix("")).replace("/", "_")
        relative = Path("panels") / column / f"{safe}.png"
        panel(tiles, path=out / relative)
        written.append({"dataset": column, "image": image["file_name"], "file": relative.as_posix()})
    return written


def concept_figures(
    table: dict[str, dict[str, dict]], rows: list[str], columns: list[str]
) -> list[tuple[str, bytes]]:
    """AP per category and the precision-recall curve of every data set."""
    out = []
    for column in columns:
        out.append((f"{column}: AP (IoU 0.50:0.95) per category and model.", ap_bars(table, rows, column)))
        out.append(
            (
                f"{column}: precision against recall at IoU 0.50, mean over categories.",
                pr_curves(table, rows, column),
            )
        )
    return out
