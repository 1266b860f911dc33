"""SAM 3 concept fine-tuning end to end: text prompts with true negatives, set loss, mAP and cgF1, predict."""

from __future__ import annotations

import json
import math
from pathlib import Path

import peft
import pytest
import torch

from samlora.cli import main
from samlora.config import config_from_dict
from samlora.data.layout import open_split
from samlora.data.synthetic import write_coco_dataset
from samlora.models.loading import load_model
from samlora.tasks.concept.data import ConceptDataset
from samlora.training.log import read_log
from samlora.training.trainer import train


@pytest.fixture(scope="module")
def coco(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two categories (ids 3 and 11), image ids 1000, 1007, ..., every fourth image empty."""
    return write_coco_dataset(
        tmp_path_factory.mktemp("coco"), n_train=4, n_valid=4, n_test=4, seed=3, size=56
    )


def concept_cfg(model: Path, data: Path, out: Path, **train) -> object:
    return config_from_dict(
        {
            "model": {"name": str(model)},
            "lora": {"rank": 4, "components": ["vision_encoder", "detr_decoder"], "target_modules": ["all-linear"], "train_fully": ["mask_decoder"]},
            "data": {"root": str(data)},
            "prompts": {"negatives_per_image": 1},
            "augment": {"hflip": 0.0},
            "train": {"max_steps": 4, "batch_size": 2, "lr": 2e-3, "num_workers": 0, "log_every": 1, "trackers": ["none"], **train},
            "eval": {"score_threshold": 0.0, "top_k": 5},
            "output": {"dir": str(out)},
        }
    )  # fmt: skip


def test_prompts_have_true_negatives_and_own_targets(tiny_dirs: dict[str, Path], coco: Path) -> None:
    cfg = concept_cfg(tiny_dirs["sam3"], coco, Path("unused"))
    split = open_split(coco, "train")
    dataset = ConceptDataset(split, cfg, train=True)
    for i in range(len(dataset)):
        sample = dataset[i]
        present = set(sample.category_ids.tolist())
        positives = {p.category_id for p in sample.prompts if p.positive}
        negatives = {p.category_id for p in sample.prompts if not p.positive}
        assert positives == present and not (negatives & present)
        assert all(p.text == split.category_names[p.category_id] for p in sample.prompts)
    valid = ConceptDataset(open_split(coco, "valid"), cfg, train=False)
    assert [p.text for p in valid[0].prompts] == [p.text for p in valid[0].prompts]


def test_cli_training_runs_and_reloads(tiny_dirs: dict[str, Path], coco: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    code = main(["train", "--model.name", str(tiny_dirs["sam3"]), "--data.root", str(coco), "--output.dir", str(out),
                 "--train.max_steps", "3", "--train.batch_size", "2", "--train.num_workers", "0", "--train.log_every", "1",
                 "--lora.components", "[vision_encoder, text_encoder]", "--eval.score_threshold", "0.0"])  # fmt: skip
    assert code == 0
    records = read_log(out)
    train_rec = [r for r in records if r["split"] == "train"]
    assert {"loss_class", "loss_presence", "loss_bbox", "loss_giou", "loss_mask", "loss_dice"} <= set(
        train_rec[0]
    )
    valid_rec = [r for r in records if r["split"] == "valid"]
    assert valid_rec and {"mAP", "cgF1", "negative_pairs"} <= set(valid_rec[-1])
    assert valid_rec[-1]["negative_pairs"] > 0
    meta = json.loads((out / "best" / "samlora.json").read_text())
    assert meta["task"] == "concept" and meta["class_names"] == {"3": "square", "11": "disc"}
    loaded = load_model(str(tiny_dirs["sam3"]))
    model = peft.PeftModel.from_pretrained(loaded.model, str(out / "best"))
    assert any("lora_" in n for n, _ in model.named_parameters())


def test_loss_falls_when_overfitting(tiny_dirs: dict[str, Path], coco: Path, tmp_path: Path) -> None:
    run = train(concept_cfg(tiny_dirs["sam3"], coco, tmp_path / "fit", max_steps=40, eval_every=40, lr=3e-3))
    losses = [r["loss"] for r in read_log(run.run_dir) if r["split"] == "train"]
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < 0.7 * first, (first, last)


def test_negative_prompts_teach_the_presence_head(tiny_dirs: dict[str, Path], tmp_path: Path) -> None:
    """A category that no image holds is only ever a negative prompt: the presence loss of the
    negatives falls from its starting value 0.5 ln 2 (presence logit 0) as the head learns absence."""
    data = write_coco_dataset(tmp_path / "coco", n_train=4, n_valid=0, n_test=0, seed=3, size=56)
    ann = data / "train" / "_annotations.coco.json"
    coco_json = json.loads(ann.read_text())
    coco_json["categories"].append({"id": 99, "name": "triangle", "supercategory": "shapes"})
    ann.write_text(json.dumps(coco_json))
    cfg = concept_cfg(tiny_dirs["sam3"], data, tmp_path / "run", max_steps=60, eval_every=60, lr=3e-3)
    cfg.prompts.negatives_per_image = 2
    rows = [r for r in read_log(train(cfg).run_dir) if r["split"] == "train"]
    negatives = [r["presence_loss_negatives"] for r in rows]
    first, last = sum(negatives[:5]) / 5, sum(negatives[-5:]) / 5
    assert abs(first - 0.5 * math.log(2)) < 0.01 and last < 0.85 * first, (first, last)


def test_eval_writes_map_and_cgf1(tiny_dirs: dict[str, Path], coco: Path, tmp_path: Path, capsys) -> None:
    run = train(concept_cfg(tiny_dirs["sam3"], coco, tmp_path / "run", max_steps=2))
    out = tmp_path / "eval"
    code = main(
        [
            "eval",
            str(run.run_dir),
            "--datasets",
            str(coco),
            "--base",
            "--output",
            str(out),
            "--eval.score_threshold",
            "0.0",
        ]
    )
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    assert report["models"] == ["vanilla", "run"]
    cell = report["metrics"]["run"][coco.name]
    for key in (
        "mAP",
        "mAP50",
        "mAP75",
        "cgF1",
        "cgF1_50",
        "cgF1_75",
        "pmF1",
        "IL_MCC",
        "per_category_AP",
        "counts",
    ):
        assert key in cell
    assert set(map(int, cell["per_category_AP"])) == {3, 11}
    assert cell["negative_pairs"] > 0 and cell["pairs"] == 4 * 2
    md = (out / "report.md").read_text()
    assert "cgF1" in md and "predictions vs" in md and "negative" in md
    assert "mAP" in capsys.readouterr().out
    curve = cell["pr_curve_50"]  # precision at COCOeval's recall points, IoU 0.50
    assert len(curve["recall"]) == len(curve["precision"]) and all(0 <= p <= 1 for p in curve["precision"])
    panels = sorted((out / "panels" / coco.name).glob("*.png"))
    assert len(panels) == 4  # eval.panels images: image | ground truth | run | vanilla, detections drawn
    page = (out / "report.html").read_text()
    assert "AP (IoU 0.50:0.95) per category" in page and "precision against recall" in page
    assert page.count("data:image/") == 2 + len(panels) and "text prompts and detections" in page


def test_predict_with_adapter_and_prompts(tiny_dirs: dict[str, Path], coco: Path, tmp_path: Path) -> None:
    run = train(concept_cfg(tiny_dirs["sam3"], coco, tmp_path / "run", max_steps=1))
    out = tmp_path / "pred"
    image = next((coco / "test").glob("*.png"))
    code = main(["predict", str(image), "--adapter", str(run.run_dir), "--prompt", "square", "disc", "--threshold", "0",
                 "--nms-iou", "1", "--top-k", "2", "--mask-threshold", "-10", "--output", str(out)])  # fmt: skip
    # (the tiny model's mask logits are all negative: a low mask threshold makes them non-empty,
    # since an empty mask is never a detection)
    assert code == 0
    results = json.loads((out / "predictions.json").read_text())
    assert len(results) == 4 and all(torch.isfinite(torch.tensor(r["score"])) for r in results)
    assert {r["category_id"] for r in results} == {3, 11}  # each prompt, with its data set's own id
