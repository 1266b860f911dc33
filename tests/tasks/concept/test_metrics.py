"""COCO mAP against pycocotools run directly, and cgF1 on hand-computed cases."""

from __future__ import annotations

import contextlib
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from samlora.tasks.concept.metrics import ConceptPair, cgf1, cgf1_from_coco, coco_map

SIZES = {17: (48, 64), 1005: (40, 40), 42: (32, 32)}  # image id -> (H, W); 42 has no objects
CATS = (3, 11)


def _rle(mask: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": rle["size"], "counts": rle["counts"].decode("ascii")}


def _block(image_id: int, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    mask = np.zeros(SIZES[image_id], dtype=bool)
    mask[y0:y1, x0:x1] = True
    return mask


def _dataset() -> tuple[dict, list[dict]]:
    """Ground truth with polygons and RLE, non-contiguous ids, an empty image; and results."""
    images = [{"id": i, "file_name": f"{i}.jpg", "height": h, "width": w} for i, (h, w) in SIZES.items()]
    categories = [{"id": 3, "name": "crack"}, {"id": 11, "name": "pothole"}]
    anns = [
        {"id": 7, "image_id": 17, "category_id": 3, "segmentation": [[4, 4, 20, 4, 20, 16, 4, 16]]},
        {"id": 8, "image_id": 17, "category_id": 11, "segmentation": _rle(_block(17, 20, 40, 30, 60))},
        {"id": 9, "image_id": 1005, "category_id": 3, "segmentation": _rle(_block(1005, 5, 25, 5, 15))},
        {"id": 12, "image_id": 1005, "category_id": 3, "segmentation": _rle(_block(1005, 28, 38, 20, 38))},
    ]
    coco = COCO()
    coco.dataset = {"images": images, "categories": categories, "annotations": anns}
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    for ann in anns:  # complete records, so pycocotools can read the file directly
        rle = coco.annToRLE(ann)
        ann.update(iscrowd=0, area=float(mask_utils.area(rle)), bbox=mask_utils.toBbox(rle).tolist())
    results = [
        (17, 3, _block(17, 4, 16, 4, 21), 0.9),  # good
        (17, 11, _block(17, 22, 40, 30, 60), 0.8),  # IoU 0.9
        (17, 11, _block(17, 0, 10, 40, 60), 0.95),  # false positive, higher score
        (1005, 3, _block(1005, 5, 25, 5, 12), 0.7),  # IoU 0.7
        (1005, 3, _block(1005, 28, 38, 20, 38), 0.4),  # exact, low score
        (42, 11, _block(42, 0, 8, 0, 8), 0.6),  # on the image without objects
    ]
    res = [
        {
            "image_id": i,
            "category_id": c,
            "segmentation": _rle(m),
            "score": s,
            "bbox": mask_utils.toBbox(_rle(m)).tolist(),
        }
        for i, c, m, s in results
    ]
    return {"images": images, "categories": categories, "annotations": anns}, res


def _pycocotools(tmp_path: Path, gt: dict, res: list[dict], iou_type: str) -> COCOeval:
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "res.json").write_text(json.dumps(res))
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(str(tmp_path / "gt.json"))
        evaluator = COCOeval(coco_gt, coco_gt.loadRes(str(tmp_path / "res.json")), iou_type)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return evaluator


@pytest.mark.parametrize("iou_type", ["segm", "bbox"])
def test_coco_map_equals_pycocotools(tmp_path: Path, iou_type: str) -> None:
    gt, res = _dataset()
    reference = _pycocotools(tmp_path, gt, res, iou_type)
    ours = coco_map(gt, res, iou_types=(iou_type,))
    prefix = "" if iou_type == "segm" else "bbox_"
    assert ours[prefix + "mAP"] == pytest.approx(reference.stats[0])
    assert ours[prefix + "mAP50"] == pytest.approx(reference.stats[1])
    assert ours[prefix + "mAP75"] == pytest.approx(reference.stats[2])
    assert set(ours[prefix + "per_category_AP"]) == set(CATS)
    for k, cat_id in enumerate(reference.params.catIds):
        p = reference.eval["precision"][:, :, k, 0, -1]
        assert ours[prefix + "per_category_AP"][cat_id] == pytest.approx(p[p > -1].mean())
    assert ours["num_images"] == 3 and ours["num_results"] == len(res)
    assert all(type(k) is int for k in ours[prefix + "per_category_AP"])
    json.dumps(ours)  # plain Python ids and floats
    assert 0 < ours[prefix + "mAP"] < 1


def test_coco_map_fills_missing_fields_and_handles_empty_results() -> None:
    gt, res = _dataset()
    bare = json.loads(json.dumps(gt))
    for ann in bare["annotations"]:
        del ann["area"], ann["iscrowd"], ann["bbox"]
    full = coco_map(gt, res, iou_types=("segm", "bbox"))
    assert coco_map(bare, res, iou_types=("segm", "bbox")) == full
    empty = coco_map(gt, [], iou_types=("segm", "bbox"))
    assert empty["mAP"] == empty["mAP50"] == empty["mAP75"] == empty["bbox_mAP"] == 0.0
    assert empty["per_category_AP"] == {3: 0.0, 11: 0.0}
    no_gt = coco_map({**gt, "annotations": []}, res)
    assert math.isnan(no_gt["mAP"]) and all(math.isnan(v) for v in no_gt["per_category_AP"].values())
    assert res[0]["segmentation"]["counts"] and "id" not in res[0]  # inputs are not modified


def test_coco_map_reports_bad_ids() -> None:
    gt, res = _dataset()
    with pytest.raises(ValueError, match="image_id 0 not in the ground truth"):
        coco_map(gt, [{**res[0], "image_id": 0}])
    with pytest.raises(ValueError, match="category_id 1 not in the ground truth"):
        coco_map(gt, [{**res[0], "category_id": 1}])
    broken = {**gt, "annotations": gt["annotations"] + [{**gt["annotations"][0], "image_id": 5}]}
    with pytest.raises(ValueError, match="image_id 5 is not in 'images'"):
        coco_map(broken, res)


def _masks(*blocks: tuple[int, int, int, int], size: int = 10) -> np.ndarray:
    out = np.zeros((len(blocks), size, size), dtype=bool)
    for k, (y0, y1, x0, x1) in enumerate(blocks):
        out[k, y0:y1, x0:x1] = True
    return out


A, B, B_WIDE, C, D = (0, 3, 0, 3), (5, 9, 0, 5), (5, 9, 0, 6), (0, 2, 6, 10), (6, 10, 6, 10)
NONE = np.zeros((0, 10, 10), dtype=bool)


def _hand_pairs() -> list[ConceptPair]:
    """Six pairs, hand-scored in ``test_cgf1_hand_computed_with_negatives``."""
    return [
        # positive: A exact, B at IoU 20/24, C a false positive, a 0.3-score prediction ignored
        ConceptPair(1, 1, _masks(A, B), _masks(A, B_WIDE, C, D), [0.9, 0.8, 0.7, 0.3]),
        ConceptPair(1, 2, _masks(D), NONE, []),  # positive, missed
        ConceptPair(2, 1, NONE, _masks(C), [0.6]),  # negative, false alarm
        ConceptPair(2, 2, NONE, _masks(A), [0.2]),  # negative, prediction below 0.5
        ConceptPair(3, 1, NONE, NONE, []),  # negative, correctly empty
        ConceptPair(3, 2, _masks(D), _masks(D), [0.99]),  # positive, exact
    ]


def test_cgf1_hand_computed_with_negatives() -> None:
    r = cgf1(_hand_pairs())
    # image level: TP = 2, FN = 1, FP = 1, TN = 2 -> MCC = (4 - 1) / sqrt(3 * 3 * 3 * 3) = 1/3
    assert (r.il_tp, r.il_fn, r.il_fp, r.il_tn) == (2, 1, 1, 2)
    assert r.il_mcc == pytest.approx(1 / 3) and r.il_mcc_defined
    assert r.il_precision == pytest.approx(2 / 3) and r.il_recall == pytest.approx(2 / 3)
    assert r.il_fpr == pytest.approx(1 / 3)
    # IoU <= 0.80 (7 thresholds): TP 3, FP 1, FN 1 -> pmF1 0.75; 0.85..0.95: TP 2, FP 2, FN 2 -> 0.5
    assert r.tp == [3] * 7 + [2] * 3 and r.fp == [1] * 7 + [2] * 3 and r.fn == [1] * 7 + [2] * 3
    assert r.pmf1_50 == pytest.approx(0.75) and r.pmf1_75 == pytest.approx(0.75)
    assert r.pmf1 == pytest.approx((7 * 0.75 + 3 * 0.5) / 10)
    assert r.cgf1 == pytest.approx(0.675 / 3) and r.cgf1_50 == pytest.approx(0.25)
    assert (r.num_pairs, r.num_positive_pairs, r.num_negative_pairs) == (6, 3, 3)
    assert r.per_category[1] == {
        "pairs": 3,
        "negative_pairs": 2,
        "gt": 2,
        "pred": 4,
        "pred_on_negatives": 1,
        "tp50": 2,
        "fp50": 1,
        "fn50": 0,
    }
    assert r.per_category[2]["gt"] == 2 and r.per_category[2]["pred"] == 1 and r.per_category[2]["fn50"] == 1
    assert r.notes == [] and r.as_dict()["cgf1"] == r.cgf1


def test_cgf1_all_pairs_positive_is_undefined_not_zero() -> None:
    pairs = [
        ConceptPair(1, 1, _masks(A, B), _masks(A, B), [0.9, 0.9]),
        ConceptPair(2, 1, _masks(D), _masks(D), [0.8]),
    ]
    r = cgf1(pairs)
    assert r.pmf1 == 1.0 and r.num_negative_pairs == 0
    assert math.isnan(r.il_mcc) and not r.il_mcc_defined
    assert math.isnan(r.cgf1) and math.isnan(r.cgf1_50)
    assert "no negative" in r.notes[0]


def test_cgf1_empty_predictions() -> None:
    pairs = [ConceptPair(1, 1, _masks(A), NONE, []), ConceptPair(1, 2, NONE, NONE, [])]
    r = cgf1(pairs)
    # both kinds of pairs, constant "nothing here" answer: MCC 0 (no information), pmF1 0
    assert r.il_mcc == 0.0 and r.il_mcc_defined and r.pmf1 == 0.0 and r.cgf1 == 0.0
    assert (r.il_tp, r.il_fp, r.il_tn, r.il_fn) == (0, 0, 1, 1) and r.fn == [1] * 10
    only_negatives = cgf1([ConceptPair(1, 2, NONE, NONE, [])])
    assert math.isnan(only_negatives.pmf1) and math.isnan(only_negatives.cgf1) and only_negatives.il_tn == 1


def test_cgf1_accepts_tensors_and_rles_and_checks_inputs() -> None:
    import torch

    as_tensors = [ConceptPair(p.image_id, p.category_id, torch.from_numpy(p.gt_masks), torch.from_numpy(p.pred_masks),
                              torch.tensor(p.pred_scores)) for p in _hand_pairs()]  # fmt: skip
    as_rles = [ConceptPair(p.image_id, p.category_id, [_rle(m) for m in p.gt_masks],
                           [_rle(m) for m in p.pred_masks], p.pred_scores) for p in _hand_pairs()]  # fmt: skip
    expected = cgf1(_hand_pairs()).as_dict()
    assert cgf1(as_tensors).as_dict() == expected and cgf1(as_rles).as_dict() == expected
    with pytest.raises(ValueError, match="original image size"):
        cgf1([ConceptPair(1, 1, _masks(A), _masks(A, size=5), [0.9])])
    with pytest.raises(ValueError, match="twice"):
        cgf1([ConceptPair(1, 1, NONE, NONE, []), ConceptPair(1, 1, NONE, NONE, [])])
    with pytest.raises(ValueError, match="scores"):
        cgf1([ConceptPair(1, 1, NONE, _masks(A), [])])


def test_cgf1_from_coco_queries_every_category_on_every_image() -> None:
    gt, res = _dataset()
    r = cgf1_from_coco(gt, res)
    # 3 images x 2 categories; positives: (17,3), (17,11), (1005,3)
    assert (r.num_pairs, r.num_positive_pairs, r.num_negative_pairs) == (6, 3, 3)
    # kept predictions: (17,3) exact-ish, (17,11) IoU 0.9 + FP, (1005,3) IoU 0.7 (0.4 ignored), (42,11) false alarm
    assert (r.il_tp, r.il_fn, r.il_fp, r.il_tn) == (3, 0, 1, 2)
    assert r.tp[0] == 3 and r.fp[0] == 1 and r.fn[0] == 1
    assert r.per_category[11]["pred_on_negatives"] == 1 and r.per_category[3]["negative_pairs"] == 1
    only_present = [(17, 3), (17, 11), (1005, 3)]
    positives_only = cgf1_from_coco(gt, [x for x in res if x["image_id"] != 42], queried_pairs=only_present)
    assert positives_only.num_negative_pairs == 0 and math.isnan(positives_only.cgf1)
    with pytest.raises(ValueError, match="not queried"):
        cgf1_from_coco(gt, res, queried_pairs=only_present)


def test_cgf1_every_image_has_objects_absent_categories_are_negatives() -> None:
    """Images 1 and 2 both hold objects (A on 1, B on 2): the absent (1, B) and (2, A) are negatives."""
    a = np.zeros((1, 10, 10), dtype=bool)
    a[0, 2:6, 2:6] = True
    b = np.zeros((1, 10, 10), dtype=bool)
    b[0, 5:9, 1:9] = True
    none = np.zeros((0, 10, 10), dtype=bool)
    pairs = [
        ConceptPair(1, "A", a, a, [0.9]),  # found
        ConceptPair(1, "B", none, b, [0.8]),  # false alarm on a negative
        ConceptPair(2, "B", b, b, [0.7]),  # found
        ConceptPair(2, "A", none, none, []),  # correctly silent
    ]
    r = cgf1(pairs)
    # IL: TP 2, FN 0, FP 1, TN 1 -> MCC = (2*1 - 1*0) / sqrt(3 * 2 * 2 * 1) = 2 / sqrt(12)
    assert (r.il_tp, r.il_fn, r.il_fp, r.il_tn) == (2, 0, 1, 1)
    assert r.il_mcc == pytest.approx(2 / math.sqrt(12)) and r.num_negative_pairs == 2
    assert r.pmf1 == pytest.approx(1.0)  # the false alarm is on a negative pair: not in pmF1
    assert r.cgf1 == pytest.approx(2 / math.sqrt(12)) and r.cgf1_75 == pytest.approx(2 / math.sqrt(12))


def test_cgf1_crowd_only_pair_is_ignored() -> None:
    gt, res = _dataset()
    crowd = _block(42, 0, 8, 0, 8)  # the image without objects gets a crowd region of category 11
    rle = _rle(crowd)
    gt["annotations"].append(
        {"id": 99, "image_id": 42, "category_id": 11, "segmentation": rle, "iscrowd": 1,
         "area": float(crowd.sum()), "bbox": [0, 0, 8, 8]}
    )  # fmt: skip
    r = cgf1_from_coco(gt, res)
    # (42, 11) was a negative with a false alarm; crowd-only it is neither, and its result is dropped
    assert r.num_ignored_pairs == 1 and (r.num_pairs, r.num_negative_pairs) == (5, 2)
    assert (r.il_tp, r.il_fn, r.il_fp, r.il_tn) == (3, 0, 0, 2)
