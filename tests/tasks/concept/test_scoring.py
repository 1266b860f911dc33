"""Concept evaluation with injected perfect (or rescaled) predictions: Roboflow super-categories,
mAP over every detection vs cgF1 at its threshold, crowd-only pairs, the report and its COCO results,
and validation targets at the training resolution."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest
import torch
from accelerate import Accelerator
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from samlora.config import config_from_dict
from samlora.data.categories import prompt_categories
from samlora.data.check import check_dataset
from samlora.data.layout import open_split
from samlora.data.synthetic import write_coco_dataset
from samlora.evaluate.runner import run_eval
from samlora.models.concept import PairOutputs
from samlora.models.loading import load_model
from samlora.tasks.concept import scoring as concept_eval
from samlora.tasks.concept.data import ConceptDataset
from samlora.tasks.concept.forward import PairBatch
from samlora.tasks.concept.task import ConceptTask

SIZE = (56, 56)  # the tiny SAM 3's input size: input-resolution targets map 1:1 to the image


def roboflow_export(root: Path) -> Path:
    """Two categories (3 'square', 11 'disc') plus Roboflow's super-category 0 'Square' without
    objects, and a crowd 'disc' on a valid image that has no other disc (a crowd-only pair)."""
    write_coco_dataset(root, n_train=4, n_valid=4, n_test=0, seed=5, size=SIZE)
    for split in ("train", "valid"):
        path = root / split / "_annotations.coco.json"
        data = json.loads(path.read_text())
        for cat in data["categories"]:
            cat["supercategory"] = "Square"
        data["categories"].insert(0, {"id": 0, "name": "Square", "supercategory": "none"})
        if split == "valid":
            with_disc = {a["image_id"] for a in data["annotations"] if a["category_id"] == 11}
            image = next(i for i in data["images"] if i["id"] not in with_disc)
            data["annotations"].append(
                {"id": 10_000, "image_id": image["id"], "category_id": 11, "iscrowd": 1,
                 "bbox": [1, 1, 8, 8], "area": 64, "segmentation": [[1, 1, 9, 1, 9, 9, 1, 9]]}
            )  # fmt: skip
        path.write_text(json.dumps(data))
    return root


@pytest.fixture(scope="module")
def rf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return roboflow_export(tmp_path_factory.mktemp("rf"))


def cfg_for(model: Path, data: Path, **ev) -> object:
    return config_from_dict(
        {
            "model": {"name": str(model)},
            "data": {"root": str(data)},
            "loss": {"resolution": "input"},
            "train": {"num_workers": 0, "best_metric": "mAP"},
            "eval": {"nms_iou": 1.0, "panels": 0, **ev},
        }
    )


class Oracle:
    """Stands in for the model: every target object is found with score ``score``; records what
    it was asked so tests can check the target masks' size."""

    def __init__(self, score: float = 0.99995):
        self.logit = float(torch.logit(torch.tensor(score**0.5)))
        self.sizes: set[int] = set()
        self.pairs = 0

    def __call__(self, model, loaded, batch: PairBatch) -> PairOutputs:
        n, q = len(batch.targets), 6
        side = int(batch.targets[0]["masks"].shape[-1])
        self.sizes.add(side)
        self.pairs += n
        logits, presence = torch.full((n, q), -20.0), torch.full((n,), -20.0)
        boxes, masks = torch.zeros(n, q, 4), torch.full((n, q, side, side), -20.0)
        for i, target in enumerate(batch.targets):
            k = int(target["boxes"].shape[0])
            if k:
                presence[i] = self.logit
                logits[i, :k] = self.logit
                boxes[i, :k] = target["boxes"]
                masks[i, :k] = torch.where(target["masks"], 20.0, -20.0)
        return PairOutputs(logits=logits, presence=presence, boxes=boxes, masks=masks)


def test_super_category_is_no_prompt_and_is_reported(rf: Path, tiny_dirs: dict[str, Path]) -> None:
    split = open_split(rf, "train")
    report = check_dataset(split, deep=True, workers=1)
    text = " ".join(str(p) for p in report.warnings)
    assert "super-category" in text and "not use it as a text prompt" in text
    dataset = ConceptDataset(split, cfg_for(tiny_dirs["sam3"], rf), train=True)
    assert dataset.names == {3: "square", 11: "disc"}
    for i in range(len(dataset)):
        assert 0 not in {p.category_id for p in dataset[i].prompts}


def test_case_duplicate_names_are_reported(tmp_path: Path) -> None:
    root = write_coco_dataset(tmp_path / "d", n_train=2, n_valid=0, seed=1, size=SIZE)
    path = root / "train" / "_annotations.coco.json"
    data = json.loads(path.read_text())
    data["categories"].append({"id": 40, "name": "DISC"})  # unannotated duplicate of 11 'disc'
    next(c for c in data["categories"] if c["id"] == 3)["name"] = "Disc"  # annotated, case-only twin
    path.write_text(json.dumps(data))
    split = open_split(root, "train")
    warnings = [str(p) for p in check_dataset(split, deep=False, workers=1).warnings]
    assert any(
        "category id 40" in w and "same name as category id" in w and "text prompt" in w for w in warnings
    )
    assert any("only in letter case" in w and "'Disc'" in w for w in warnings)
    assert set(prompt_categories(split)) == {3, 11}  # 40 is no prompt; both annotated ones stay


def test_perfect_predictions_give_one_with_super_category_and_crowd(
    rf: Path, tiny_dirs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    oracle = Oracle()
    monkeypatch.setattr(concept_eval, "decode_batch", oracle)
    cfg = cfg_for(tiny_dirs["sam3"], rf)
    out = tmp_path / "eval"
    report = run_eval(cfg, [], [rf], "valid", out, base=True, model_name=str(tiny_dirs["sam3"]), device="cpu")
    cell = report["metrics"]["vanilla"][rf.name]
    for key in ("mAP", "mAP50", "mAP75", "cgF1", "cgF1_50", "cgF1_75", "IL_MCC", "pmF1"):
        assert cell[key] == pytest.approx(1.0), (key, cell)
    assert set(cell["per_category_AP"]) == {3, 11}  # no super-category row
    assert cell["ignored_pairs"] == 1 and cell["pairs"] == 4 * 2 - 1 and cell["negative_pairs"] > 0
    assert oracle.sizes == {SIZE[0]}  # loss.resolution input: input-size targets, as in training
    md = (out / "report.md").read_text()
    for text in ("mAP@75", "cgF1@75", "AP per category", "predictions vs", "crowd-only ignored"):
        assert text in md
    # the COCO results file loads with pycocotools and gives the same mAP run directly
    results = out / f"predictions_vanilla_{rf.name}.json"
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(rf / "valid" / "_annotations.coco.json"))
        evaluator = COCOeval(gt, gt.loadRes(str(results)), "segm")
        evaluator.params.catIds = [3, 11]
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    assert evaluator.stats[0] == pytest.approx(cell["mAP"])


def test_map_uses_every_detection_and_cgf1_its_threshold(
    rf: Path, tiny_dirs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(concept_eval, "decode_batch", Oracle(score=0.3))  # right, but unsure
    cells = {}
    for threshold in (0.5, 0.2):
        cfg = cfg_for(tiny_dirs["sam3"], rf, score_threshold=threshold)
        report = run_eval(cfg, [], [rf], "valid", tmp_path / str(threshold), base=True,
                          model_name=str(tiny_dirs["sam3"]), device="cpu")  # fmt: skip
        cells[threshold] = report["metrics"]["vanilla"][rf.name]
    assert cells[0.5]["mAP"] == pytest.approx(1.0) and cells[0.2]["mAP"] == pytest.approx(1.0)
    assert cells[0.5]["cgF1_50"] == 0.0 and all(c["pred"] == 0 for c in cells[0.5]["counts"].values())
    assert cells[0.2]["cgF1_50"] == pytest.approx(1.0)
    assert all(c["pred"] == c["gt"] for c in cells[0.2]["counts"].values())


def test_validation_with_perfect_predictions(
    rf: Path, tiny_dirs: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    oracle = Oracle()
    monkeypatch.setattr(concept_eval, "decode_batch", oracle)
    loaded = load_model(str(tiny_dirs["sam3"]))
    task = ConceptTask(loaded, cfg_for(tiny_dirs["sam3"], rf))
    _, valid = task.datasets()
    metrics = task.validate(loaded.model, valid, Accelerator(cpu=True))
    assert metrics["mAP"] == pytest.approx(1.0) and metrics["cgF1"] == pytest.approx(1.0)
    assert metrics["loss"] < 0.05 and oracle.sizes == {SIZE[0]}
    assert task.class_names == {3: "square", 11: "disc"}
