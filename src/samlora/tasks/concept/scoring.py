"""Concept evaluation: every category queried on every image, COCO mAP and cgF1 at the original resolution.

Scores are ``sigmoid(logit) * sigmoid(presence)`` as in SAM 3. Every detection
goes through the NMS and top-k ``predict`` uses, with NO score threshold, so
COCO mAP sees the whole precision-recall curve (at most ``eval.top_k`` per
image x category, as COCO's ``maxDets``). cgF1 and the prediction counts take
the detections scoring at least ``eval.score_threshold`` (SAM 3: 0.5); with
``eval.merge`` those are merged among themselves exactly as ``predict`` does.
Ground truth is matched by the data set's real image ids; every image x
category pair is queried, so absent categories are the negatives cgF1 needs; a
category present only as crowd is neither (ignored, as COCO ignores crowds).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import torch
from pycocotools import mask as mask_utils
from torch import nn

from samlora.config import Config
from samlora.models.concept import PairOutputs, decode_pairs, encode_images, encode_texts
from samlora.models.loading import LoadedModel
from samlora.tasks.postprocess import PostProcess, merge_overlapping, postprocess

from .data import ConceptSample
from .forward import PairBatch, loss_of, pair_batch
from .metrics import cgf1_from_coco, coco_map


def post_from(cfg: Config) -> PostProcess:
    """The shared post-processing settings of the ``eval`` section."""
    ev = cfg.eval
    return PostProcess(
        threshold=ev.score_threshold,
        mask_threshold=ev.mask_threshold,
        nms_iou=ev.nms_iou,
        top_k=ev.top_k,
        merge=ev.merge,
    )


def rle(mask: np.ndarray) -> dict:
    """COCO compressed RLE of an ``H x W`` bool mask, JSON-ready."""
    encoded = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    encoded["counts"] = encoded["counts"].decode("ascii")
    return encoded


def xywh(mask: np.ndarray) -> list[float]:
    """COCO ``[x, y, w, h]`` box of a mask."""
    return [float(v) for v in mask_utils.toBbox(rle(mask))]


@dataclass
class ConceptCollector:
    """Accumulates COCO ground truth, COCO results and the loss over evaluation batches."""

    categories: dict[int, str]
    images: list[dict] = field(default_factory=list)
    annotations: list[dict] = field(default_factory=list)
    results: list[dict] = field(default_factory=list)
    loss_sum: float = 0.0
    pairs: int = 0

    def image_id(self, sample: ConceptSample) -> int | str:
        return sample.image_id if isinstance(sample.image_id, int) else f"{sample.image_id}"

    def add_ground_truth(self, sample: ConceptSample) -> None:
        image_id = self.image_id(sample)
        height, width = int(sample.image.shape[1]), int(sample.image.shape[2])
        self.images.append({"id": image_id, "file_name": sample.file_name, "height": height, "width": width})
        groups = [(sample.masks, sample.category_ids, 0), (sample.crowd_masks, sample.crowd_category_ids, 1)]
        for masks, cats, crowd in groups:
            for mask, cat in zip(masks.numpy(), cats.tolist()):
                self.annotations.append(
                    {
                        "id": len(self.annotations) + 1,
                        "image_id": image_id,
                        "category_id": int(cat),
                        "segmentation": rle(mask),
                        "area": float(mask.sum()),
                        "bbox": xywh(mask),
                        "iscrowd": crowd,
                    }
                )

    def ground_truth(self) -> dict:
        cats = [{"id": c, "name": n} for c, n in sorted(self.categories.items())]
        return {"images": self.images, "annotations": self.annotations, "categories": cats}


def decode_batch(model: nn.Module, loaded: LoadedModel, batch: PairBatch) -> PairOutputs:
    """Encode the batch's images and texts once and decode its ``N`` pairs."""
    vision = encode_images(model, batch.pixels)
    features, text_mask = encode_texts(model, loaded, batch.texts, batch.pixels.device)
    return decode_pairs(model, vision, batch.image_index, features, text_mask, batch.text_index)


UPSAMPLE_CHUNK = 32  # queries upsampled to the original resolution at a time (memory bound)


def pair_instances(
    mask_logits: torch.Tensor, scores: torch.Tensor, upsample, post: PostProcess
) -> tuple[torch.Tensor, torch.Tensor]:
    """Every non-empty detection of one pair after NMS and top-k, by descending score.

    Args:
        mask_logits: ``Q x h x w`` decoder logits; ``scores``: ``Q``.
        upsample: maps ``k x h x w`` logits to ``k x H x W`` at the original resolution.
        post: NMS / top-k / mask threshold; its ``threshold`` only splits what ``merge`` may join.

    Returns:
        ``K x H x W`` bool masks and ``K`` scores, ``K <= post.top_k``.
    """
    order = scores.argsort(descending=True)
    masks = torch.cat(
        [upsample(mask_logits[idx].float()) > post.mask_threshold for idx in order.split(UPSAMPLE_CHUNK)]
    )
    scores = scores[order]
    every = dataclasses.replace(post, threshold=0.0, merge=False)  # postprocess drops empty masks
    masks, scores, _, _ = postprocess(masks, scores, None, every)
    if post.merge and len(masks) > 1:  # merged within the operating point, and within the tail
        parts = []
        for chosen in (scores >= post.threshold, scores < post.threshold):
            if chosen.any():
                labels = torch.zeros(int(chosen.sum()), dtype=torch.long, device=scores.device)
                merged, merged_scores, _ = merge_overlapping(
                    masks[chosen], scores[chosen], labels, post.merge_overlap
                )
                parts.append((merged, merged_scores))
        masks, scores = torch.cat([m for m, _ in parts]), torch.cat([s for _, s in parts])
        order = scores.argsort(descending=True)[: post.top_k]
        masks, scores = masks[order], scores[order]
    return masks, scores


@torch.no_grad()
def evaluate_batch(
    model: nn.Module,
    loaded: LoadedModel,
    samples: list[ConceptSample],
    loss_fn,
    post: PostProcess,
    collector: ConceptCollector,
    mask_size: int | None = None,
) -> None:
    """Decode every (image, category) pair of a batch; add loss, ground truth and post-processed results.

    ``mask_size``: side of the loss's target masks, as in training (``concept.target_size``).
    """
    pre = loaded.preprocessing
    device = next(model.parameters()).device
    batch = pair_batch(samples, pre, device, mask_size)
    out = decode_batch(model, loaded, batch)
    scored = len(batch.targets) - sum(batch.ignore)
    if scored:
        _, terms = loss_of(loss_fn, out, batch)
        collector.loss_sum += float(terms["loss"]) * scored
        collector.pairs += scored
    for sample in samples:
        collector.add_ground_truth(sample)
    scores = out.scores()
    for n in range(len(batch.targets)):
        sample = samples[int(batch.image_index[n])]
        geom = batch.geoms[int(batch.image_index[n])]
        masks, kept_scores = pair_instances(
            out.masks[n], scores[n], partial(pre.logits_to_original, geom=geom), post
        )
        for mask, score in zip(masks.cpu().numpy(), kept_scores.tolist()):
            collector.results.append(
                {
                    "image_id": collector.image_id(sample),
                    "category_id": int(batch.category_ids[n]),
                    "segmentation": rle(mask),
                    "bbox": xywh(mask),
                    "score": float(score),
                }
            )


def concept_metrics(gt: dict, results: list[dict], score_threshold: float) -> dict[str, float | dict]:
    """mAP (0.50:0.95, @50, @75, per category) over every result; cgF1 (and its parts) and the
    prediction/GT counts per category over the results scoring at least ``score_threshold``."""
    maps = coco_map(gt, results)
    cg = cgf1_from_coco(gt, results, score_threshold=score_threshold)
    counts: dict[int, dict[str, int]] = {c["id"]: {"gt": 0, "pred": 0} for c in gt["categories"]}
    for ann in gt["annotations"]:
        if not ann.get("iscrowd"):
            counts[ann["category_id"]]["gt"] += 1
    for res in results:
        if res["score"] >= score_threshold:
            counts[res["category_id"]]["pred"] += 1
    d = cg.as_dict()
    return {
        "mAP": maps["mAP"],
        "mAP50": maps["mAP50"],
        "mAP75": maps["mAP75"],
        "per_category_AP": maps["per_category_AP"],
        "pr_curve_50": maps["pr_curve_50"],
        "cgF1": d["cgf1"],
        "cgF1_50": d["cgf1_50"],
        "cgF1_75": d["cgf1_75"],
        "pmF1": d["pmf1"],
        "IL_MCC": d["il_mcc"],
        "IL_precision": d["il_precision"],
        "IL_recall": d["il_recall"],
        "pairs": d["num_pairs"],
        "negative_pairs": d["num_negative_pairs"],
        "ignored_pairs": d["num_ignored_pairs"],
        "score_threshold": score_threshold,
        "counts": counts,
        "notes": d.get("notes", []),
    }
