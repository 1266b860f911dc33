"""Concept-segmentation metrics: COCO mAP (pycocotools) and SAM 3's cgF1.

Both work on the REAL image and category ids of a COCO data set; nothing is re-indexed, so
non-contiguous ids (Roboflow exports, subsets) are safe. Masks are compared at the original image
resolution.

cgF1 follows ``CGF1Eval`` in ``facebookresearch/sam3: sam3/eval/cgf1_eval.py`` (the SAM 3 paper's
"concept-grounded F1"). The unit is an (image, concept prompt) pair; a pair is *positive* when the
concept has at least one (non-crowd) instance in the image, *negative* otherwise:

1. Keep predictions with ``score >= 0.5`` (``CGF1Eval(threshold=0.5)``; scores of ``Sam3Model`` are
   ``sigmoid(pred_logits) * sigmoid(presence_logits)``).
2. Per pair, one-to-one match kept predictions to ground truth with the Hungarian algorithm
   maximising the summed mask IoU (``linear_sum_assignment(-ious)``), THEN, for each IoU threshold
   ``t`` in 0.50:0.05:0.95, ``TP_t`` = matches with IoU >= t, ``FP_t = #pred - TP_t``,
   ``FN_t = #gt - TP_t``.
3. pmF1_t (positive micro F1) = ``2 TP / (2 TP + FP + FN)`` with TP, FP, FN summed over POSITIVE
   pairs only (false positives on negative pairs do not enter it).
4. Image level, over ALL pairs: IL_TP = positive with a kept prediction, IL_FN = positive without,
   IL_FP = negative with one, IL_TN = negative without. IL_MCC is their Matthews correlation.
5. cgF1_t = pmF1_t * IL_MCC; "cgF1" is the mean over the ten thresholds, plus cgF1@50 and cgF1@75.

Edge cases (SAM 3 adds 1e-4/1e-6 to denominators, which silently turns every 0/0 into 0; here the
formulas are exact and each 0/0 is decided explicitly):

* No negative pairs (or no positive pairs): whether the model can tell "concept present" from
  "absent" was never tested, so IL_MCC is **undefined: NaN**, and so are the cgF1 values;
  ``il_mcc_defined`` is False and ``notes`` says how to fix it (query every category on every
  image). SAM 3's code reports IL_MCC = 0 and cgF1 = 0 here, the "cgF1 is always 0" trap of tools that
  evaluate only the prompts present in each image; pmF1 stays meaningful and is reported.
* Both kinds of pairs present but the model answers the same for all of them (never predicts, or
  predicts on every pair): MCC is 0/0 with the limit 0 (a constant answer carries no information),
  so IL_MCC = 0, which is also SAM 3's value.
* Image-level precision/recall/F1/FPR with an empty denominator are 0; with no positive pairs
  pmF1 is NaN.
"""

from __future__ import annotations

import contextlib
import copy
import io
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from scipy.optimize import linear_sum_assignment

__all__ = ["CGF1Result", "ConceptPair", "cgf1", "cgf1_from_coco", "coco_map"]

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
MaskInput = Any  # K x H x W bool array/tensor, or a list of pycocotools RLE dicts


def _as_rle(segmentation: dict) -> dict:
    """A result's RLE with ``counts`` as pycocotools expects (compressed bytes/str or a raw list)."""
    if isinstance(segmentation.get("counts"), list):
        return mask_utils.frPyObjects(segmentation, *segmentation["size"])
    return segmentation


# ----------------------------------------------------------------------------------------- COCO mAP
def _index_gt(gt: dict) -> COCO:
    """A pycocotools COCO index of a copy of ``gt``; fills ``iscrowd``/``area``/``bbox``, checks ids."""
    data = copy.deepcopy(gt)
    images = {img["id"]: img for img in data.get("images", [])}
    categories = {cat["id"] for cat in data.get("categories", [])}
    problems: list[str] = []
    seen: set[Any] = set()
    for n, ann in enumerate(data.get("annotations", [])):
        where = f"annotation #{n} (id {ann.get('id')!r})"
        if ann.get("image_id") not in images:
            problems.append(f"{where}: image_id {ann.get('image_id')!r} is not in 'images'")
        if ann.get("category_id") not in categories:
            problems.append(f"{where}: category_id {ann.get('category_id')!r} is not in 'categories'")
        if "id" not in ann or ann["id"] in seen:
            problems.append(f"{where}: annotation ids must be present and unique")
        seen.add(ann.get("id"))
    if problems:
        raise ValueError("the ground-truth COCO dict has problems:\n  " + "\n  ".join(problems[:20]))
    coco = COCO()
    coco.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    for ann in data.get("annotations", []):
        ann.setdefault("iscrowd", 0)
        if "area" not in ann or "bbox" not in ann:
            rle = coco.annToRLE(ann)
            ann.setdefault("area", float(mask_utils.area(rle)))
            ann.setdefault("bbox", mask_utils.toBbox(rle).tolist())
    return coco


def _load_results(coco_gt: COCO, results: list[dict], iou_type: str) -> COCO:
    """pycocotools ``loadRes`` on a copy of ``results``; empty results give an empty index."""
    images, cats = set(coco_gt.getImgIds()), set(coco_gt.getCatIds())
    problems: list[str] = []
    for n, r in enumerate(results):
        if r.get("image_id") not in images:
            problems.append(f"result #{n}: image_id {r.get('image_id')!r} not in the ground truth")
        if r.get("category_id") not in cats:
            problems.append(f"result #{n}: category_id {r.get('category_id')!r} not in the ground truth")
        problems += [f"result #{n}: no {key!r}" for key in ("score", "segmentation") if key not in r]
    if problems:
        raise ValueError("the COCO results have problems:\n  " + "\n  ".join(problems[:20]))
    if not results:
        empty = COCO()
        empty.dataset = {**coco_gt.dataset, "annotations": []}
        with contextlib.redirect_stdout(io.StringIO()):
            empty.createIndex()
        return empty
    anns = copy.deepcopy(results)
    for ann in anns:
        ann["segmentation"] = _as_rle(ann["segmentation"])
        if not ann.get("bbox"):
            ann["bbox"] = mask_utils.toBbox(ann["segmentation"]).tolist()
    with contextlib.redirect_stdout(io.StringIO()):
        return coco_gt.loadRes(anns)


def _ap(precision: np.ndarray) -> float:
    """Mean of COCOeval precisions over the defined (> -1) entries; NaN when there are none."""
    valid = precision[precision > -1]
    return float(valid.mean()) if valid.size else float("nan")


def _plain(value: Any) -> Any:
    """numpy scalars (pycocotools turns ids into ``np.int64``) -> Python scalars, for JSON."""
    return value.item() if isinstance(value, np.generic) else value


def coco_map(gt: dict, results: list[dict], iou_types: Sequence[str] = ("segm",)) -> dict[str, Any]:
    """COCO mAP with pycocotools ``COCOeval``, keyed by the real ids of ``gt``.

    Args:
        gt: a COCO data set dict (``images``, ``annotations`` with polygon or RLE ``segmentation``,
            ``categories``). Missing ``iscrowd``/``area``/``bbox`` are filled in on a copy.
        results: COCO results (``image_id``, ``category_id``, RLE ``segmentation``, ``score``, optional
            ``bbox`` XYWH pixels). May be empty.
        iou_types: any of ``"segm"`` and ``"bbox"``.

    Returns:
        For ``segm``: ``mAP`` (IoU 0.50:0.95), ``mAP50``, ``mAP75``, ``per_category_AP``
        ``{category_id: AP}`` and ``pr_curve_50`` (``recall`` and mean ``precision`` lists at IoU 0.50); for ``bbox`` the same keys prefixed ``bbox_``. Also ``num_images``,
        ``num_results``. APs are in [0, 1]; a category without ground truth has AP NaN and is left out
        of the means (COCO's convention); with no ground truth at all the means are NaN.
    """
    for iou_type in iou_types:
        if iou_type not in ("segm", "bbox"):
            raise ValueError(f"iou_types may hold 'segm' and 'bbox', not {iou_type!r}")
    coco_gt = _index_gt(gt)
    out: dict[str, Any] = {"num_images": len(coco_gt.getImgIds()), "num_results": len(results)}
    for iou_type in iou_types:
        coco_dt = _load_results(coco_gt, results, iou_type)
        evaluator = COCOeval(coco_gt, coco_dt, iouType=iou_type)
        with contextlib.redirect_stdout(io.StringIO()):
            evaluator.evaluate()
            evaluator.accumulate()
        precision = evaluator.eval["precision"]  # T x R x K x A x M, -1 where undefined
        prefix = "" if iou_type == "segm" else "bbox_"

        all_area, last_det = 0, len(evaluator.params.maxDets) - 1
        out[prefix + "mAP"] = _ap(precision[:, :, :, all_area, last_det])
        out[prefix + "mAP50"] = _ap(precision[0, :, :, all_area, last_det])
        out[prefix + "mAP75"] = _ap(precision[5, :, :, all_area, last_det])
        out[prefix + "per_category_AP"] = {
            _plain(cat_id): _ap(precision[:, :, k, all_area, last_det])
            for k, cat_id in enumerate(evaluator.params.catIds)
        }
        out[prefix + "pr_curve_50"] = _pr_curve(
            precision[0, :, :, all_area, last_det], evaluator.params.recThrs
        )
    return out


def _pr_curve(precision: np.ndarray, recalls: np.ndarray) -> dict[str, list[float]]:
    """Precision at each of COCOeval's recall thresholds (``R x K`` at one IoU), mean over the
    categories defined there; recall points where no category is defined are left out."""
    defined = precision > -1
    counts = defined.sum(axis=1)
    sums = np.where(defined, precision, 0.0).sum(axis=1)
    keep = counts > 0
    return {
        "recall": [float(r) for r in np.asarray(recalls)[keep]],
        "precision": [float(v) for v in sums[keep] / counts[keep]],
    }


# --------------------------------------------------------------------------------------------- cgF1
@dataclass
class ConceptPair:
    """One (image, concept prompt) pair to score.

    ``gt_masks``: ``K x H x W`` bool (array or tensor) or a list of K RLE dicts; K = 0 is a negative
    pair. ``pred_masks``: ``M x H x W`` bool or M RLE dicts, at the original image size (the same
    ``H x W`` as the ground truth). ``pred_scores``: M final scores in [0, 1].
    """

    image_id: Any
    category_id: Any
    gt_masks: MaskInput
    pred_masks: MaskInput
    pred_scores: Sequence[float] | np.ndarray


@dataclass
class CGF1Result:
    """cgF1 and its parts. ``*_50``/``*_75`` are at IoU 0.5/0.75, the others averaged over 0.50:0.95."""

    cgf1: float
    cgf1_50: float
    cgf1_75: float
    pmf1: float
    pmf1_50: float
    pmf1_75: float
    il_mcc: float
    il_mcc_defined: bool
    il_precision: float
    il_recall: float
    il_f1: float
    il_fpr: float
    il_tp: int
    il_fp: int
    il_tn: int
    il_fn: int
    num_pairs: int
    num_positive_pairs: int
    num_negative_pairs: int
    tp: list[int]  # per IoU threshold, positive pairs
    fp: list[int]
    fn: list[int]
    iou_thresholds: list[float]
    per_category: dict[Any, dict[str, int]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    num_ignored_pairs: int = 0  # crowd-only pairs left out by cgf1_from_coco

    def as_dict(self) -> dict[str, Any]:
        """A plain dict (NaN stays NaN), e.g. for a JSON-lines metrics log."""
        return asdict(self)


def _to_rles(masks: MaskInput) -> tuple[list[dict], tuple[int, int] | None]:
    """Masks (K x H x W bool or K RLE dicts) -> (K RLEs, (H, W) or None when K = 0)."""
    if isinstance(masks, list | tuple):
        rles = [_as_rle(m) for m in masks]
        return rles, (tuple(rles[0]["size"]) if rles else None)
    if hasattr(masks, "detach"):  # torch tensor
        masks = masks.detach().cpu().numpy()
    array = np.asarray(masks)
    if array.ndim != 3:
        raise ValueError(f"masks must be K x H x W, got shape {array.shape}")
    if array.shape[0] == 0:
        return [], (array.shape[1], array.shape[2])
    rles = mask_utils.encode(np.asfortranarray(array.transpose(1, 2, 0).astype(np.uint8)))
    return rles, (array.shape[1], array.shape[2])


def _safe_div(num: float, den: float) -> float:
    return num / den if den else 0.0


def _mcc(tp: int, fp: int, tn: int, fn: int) -> tuple[float, bool]:
    """Matthews correlation with the edge cases of the module docstring -> (value, defined)."""
    if tp + fn == 0 or tn + fp == 0:  # ground truth has one class only: not measurable
        return float("nan"), False
    den = (tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)
    if den == 0:  # constant prediction: limit 0
        return 0.0, True
    return (tp * tn - fp * fn) / math.sqrt(den), True


def cgf1(
    pairs: Iterable[ConceptPair],
    score_threshold: float = 0.5,
    iou_thresholds: Sequence[float] = tuple(IOU_THRESHOLDS),
) -> CGF1Result:
    """SAM 3's concept-grounded F1 over (image, prompt) pairs; see the module docstring.

    Every pair the model was queried on must be given, negatives (K = 0) included: they are what
    IL_MCC measures. ``per_category[category_id]`` counts ``pairs``, ``negative_pairs``, ``gt``,
    ``pred`` (kept predictions), ``pred_on_negatives``, and ``tp50``/``fp50``/``fn50`` on positive
    pairs at IoU 0.5; ``pred`` vs ``gt`` shows a model that predicts too many or too few instances.
    """
    thresholds = np.asarray(iou_thresholds, dtype=np.float64)
    tp, fp, fn = (np.zeros(len(thresholds), dtype=np.int64) for _ in range(3))
    il = {"tp": 0, "fp": 0, "tn": 0, "fn": 0}
    i50 = int(np.argmin(np.abs(thresholds - 0.5)))
    per_cat: dict[Any, dict[str, int]] = defaultdict(
        lambda: dict.fromkeys(
            ("pairs", "negative_pairs", "gt", "pred", "pred_on_negatives", "tp50", "fp50", "fn50"), 0
        )
    )
    seen: set[tuple[Any, Any]] = set()
    for pair in pairs:
        key = (pair.image_id, pair.category_id)
        if key in seen:
            raise ValueError(f"(image_id, category_id) = {key} is given twice; give each pair once")
        seen.add(key)
        gt_rles, gt_size = _to_rles(pair.gt_masks)
        pred_rles, pred_size = _to_rles(pair.pred_masks)
        scores = np.asarray(pair.pred_scores, dtype=np.float64).reshape(-1)
        if len(scores) != len(pred_rles):
            raise ValueError(f"pair {key}: {len(pred_rles)} predicted masks but {len(scores)} scores")
        if gt_rles and pred_rles and gt_size != pred_size:
            raise ValueError(
                f"pair {key}: predicted masks are {pred_size} but ground truth is {gt_size}; "
                "resize predictions to the original image size before scoring"
            )
        kept = [r for r, s in zip(pred_rles, scores) if s >= score_threshold]
        n_gt, n_dt = len(gt_rles), len(kept)
        cat = per_cat[pair.category_id]
        cat["pairs"] += 1
        cat["gt"] += n_gt
        cat["pred"] += n_dt
        if n_gt == 0:
            cat["negative_pairs"] += 1
            cat["pred_on_negatives"] += n_dt
            il["fp" if n_dt else "tn"] += 1
            continue
        il["tp" if n_dt else "fn"] += 1
        if n_dt == 0:
            tp_pair = np.zeros(len(thresholds), dtype=np.int64)
        else:
            ious = np.asarray(mask_utils.iou(kept, gt_rles, [0] * n_gt), dtype=np.float64).reshape(n_dt, n_gt)
            rows, cols = linear_sum_assignment(-ious)
            matched = ious[rows, cols]
            tp_pair = np.array([(matched >= t).sum() for t in thresholds], dtype=np.int64)
        tp += tp_pair
        fp += n_dt - tp_pair
        fn += n_gt - tp_pair
        cat["tp50"] += int(tp_pair[i50])
        cat["fp50"] += int(n_dt - tp_pair[i50])
        cat["fn50"] += int(n_gt - tp_pair[i50])

    n_pos, n_neg = il["tp"] + il["fn"], il["tn"] + il["fp"]
    pmf1 = 2 * tp / np.maximum(2 * tp + fp + fn, 1) if n_pos else np.full(len(thresholds), np.nan)
    mcc, defined = _mcc(il["tp"], il["fp"], il["tn"], il["fn"])
    cg = pmf1 * mcc
    notes: list[str] = []
    if n_neg == 0:
        notes.append(
            "no negative (image, prompt) pairs were evaluated, so IL_MCC and cgF1 are undefined (NaN); "
            "query every category on every image so that absent concepts are scored too "
            "(SAM 3's reference code would report cgF1 = 0 here)"
        )
    if n_pos == 0:
        notes.append("no positive (image, prompt) pairs: pmF1, IL_MCC and cgF1 are undefined (NaN)")
    il_p = _safe_div(il["tp"], il["tp"] + il["fp"])
    il_r = _safe_div(il["tp"], il["tp"] + il["fn"])

    def at(values: np.ndarray, t: float) -> float:
        hits = np.flatnonzero(np.isclose(thresholds, t))
        return float(values[hits[0]]) if hits.size else float("nan")

    return CGF1Result(
        cgf1=float(cg.mean()),
        cgf1_50=at(cg, 0.5),
        cgf1_75=at(cg, 0.75),
        pmf1=float(pmf1.mean()),
        pmf1_50=at(pmf1, 0.5),
        pmf1_75=at(pmf1, 0.75),
        il_mcc=mcc,
        il_mcc_defined=defined,
        il_precision=il_p,
        il_recall=il_r,
        il_f1=_safe_div(2 * il_p * il_r, il_p + il_r),
        il_fpr=_safe_div(il["fp"], n_neg),
        il_tp=il["tp"],
        il_fp=il["fp"],
        il_tn=il["tn"],
        il_fn=il["fn"],
        num_pairs=n_pos + n_neg,
        num_positive_pairs=n_pos,
        num_negative_pairs=n_neg,
        tp=tp.tolist(),
        fp=fp.tolist(),
        fn=fn.tolist(),
        iou_thresholds=thresholds.tolist(),
        per_category=dict(per_cat),
        notes=notes,
    )


def cgf1_from_coco(
    gt: dict,
    results: list[dict],
    queried_pairs: Iterable[tuple[Any, Any]] | None = None,
    score_threshold: float = 0.5,
) -> CGF1Result:
    """cgF1 of COCO results against a COCO data set, using the real ids.

    ``queried_pairs`` lists the (image_id, category_id) pairs the model was prompted with; the
    default, every image x every category, is what makes each category absent from an image a
    negative pair. Only pass a subset if the model really was not asked about the others. Crowd
    annotations are ignored, as in SAM 3's ``CGF1Eval``; a pair whose only annotations are crowd is
    neither positive nor negative and is left out with its results (COCO ignores crowd regions),
    counted in ``num_ignored_pairs``. Results for pairs outside ``queried_pairs`` raise ``ValueError``.
    """
    coco = _index_gt(gt)
    if queried_pairs is None:
        queried = [(i, c) for i in coco.getImgIds() for c in coco.getCatIds()]
    else:
        queried = list(queried_pairs)
    queried_set = set(queried)
    by_pair: dict[tuple[Any, Any], list[dict]] = defaultdict(list)
    for n, r in enumerate(results):
        key = (r.get("image_id"), r.get("category_id"))
        if key not in queried_set:
            raise ValueError(f"result #{n} is for (image_id, category_id) = {key}, which was not queried")
        by_pair[key].append(r)
    pairs = []
    ignored = 0
    for image_id, cat_id in queried:
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[image_id], catIds=[cat_id], iscrowd=False))
        if not anns and coco.getAnnIds(imgIds=[image_id], catIds=[cat_id], iscrowd=True):
            ignored += 1  # crowd only: an ignore region, not a negative
            continue
        preds = by_pair.get((image_id, cat_id), [])
        pairs.append(
            ConceptPair(
                image_id=image_id,
                category_id=cat_id,
                gt_masks=[coco.annToRLE(a) for a in anns],
                pred_masks=[_as_rle(p["segmentation"]) for p in preds],
                pred_scores=[float(p["score"]) for p in preds],
            )
        )
    result = cgf1(pairs, score_threshold=score_threshold)
    result.num_ignored_pairs = ignored
    return result
