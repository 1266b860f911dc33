"""Inference: the Predictor API and `samlora predict`, every prompt type, adapters, outputs, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from samlora.cli import main
from samlora.config import LoraSettings
from samlora.errors import AdapterError, PromptError, SamloraError
from samlora.lora.adapters import adapter_metadata, save_adapter
from samlora.lora.plan import apply_lora
from samlora.models.loading import load_model
from samlora.predict.predictor import Predictor
from samlora.tasks.postprocess import PostProcess

SETTINGS = LoraSettings(
    rank=2, components=["vision_encoder"], target_modules=["all-linear"], train_fully=["mask_decoder"]
)


def make_adapter(model_dir: Path, folder: Path, seed: int) -> Path:
    loaded = load_model(str(model_dir))
    model, _ = apply_lora(loaded.model, loaded.spec, SETTINGS)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in (p for p in model.parameters() if p.requires_grad):
            p.add_(0.1 * torch.randn(p.shape, generator=gen))
    return save_adapter(model, folder, adapter_metadata(loaded, SETTINGS, class_names={1: "square"}))


@pytest.fixture(scope="module")
def adapters(tiny_dirs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("adapters")
    return [make_adapter(tiny_dirs["sam"], root / f"a{i}", seed=i) for i in (1, 2)]


def test_box_prompts_give_masks_at_original_resolution(
    tiny_dirs: dict[str, Path], adapters: list[Path], image: np.ndarray
) -> None:
    predictor = Predictor(str(tiny_dirs["sam"]), adapters=[adapters[0]], device="cpu")
    predictor.set_image(image)
    out = predictor.predict(boxes=[[20, 10, 50, 30], [0, 0, 30, 20]])
    assert out.masks.shape == (2, 45, 70) and out.masks.dtype == bool
    assert out.scores.shape == (2,) and out.boxes.shape == (2, 4)
    again = predictor.predict(boxes=torch.tensor([[20.0, 10, 50, 30]]))  # torch input, same embedding
    assert np.array_equal(again.masks[0], out.masks[0])


def test_point_prompts(tiny_dirs: dict[str, Path], image: np.ndarray) -> None:
    predictor = Predictor(str(tiny_dirs["sam2"]), device="cpu")
    single = predictor.predict(image, points=[[30, 20]])
    assert single.masks.shape == (1, 45, 70)
    several = predictor.predict(
        points=[[[30, 20], [5, 5]], [[60, 40], [10, 30]]], point_labels=[[1, 0], [1, 1]]
    )
    assert several.masks.shape == (2, 45, 70)
    both = predictor.predict(boxes=[[20, 10, 50, 30]], points=[[[30, 20]]])
    assert both.masks.shape == (1, 45, 70)


def test_text_prompts_on_concept_model(tiny_dirs: dict[str, Path], image: np.ndarray) -> None:
    predictor = Predictor(str(tiny_dirs["sam3"]), device="cpu")
    out = predictor.predict(
        image, text=["square", "disc"], post=PostProcess(threshold=0.0, nms_iou=1.0, top_k=5)
    )
    assert len(out) > 0 and out.masks.shape[1:] == (45, 70)
    assert set(out.labels) <= {"square", "disc"}
    assert (
        max(out.labels.count("square"), out.labels.count("disc")) <= 5
    )  # top-k per (image, prompt), like eval
    assert out.masks.reshape(len(out), -1).any(1).all()  # no empty mask is a detection


def test_text_prompt_to_promptable_model_names_prompt_types(
    tiny_dirs: dict[str, Path], image: np.ndarray
) -> None:
    predictor = Predictor(str(tiny_dirs["sam"]), device="cpu")
    with pytest.raises(PromptError, match="takes box, points prompts"):
        predictor.predict(image, text=["crack"])


def test_box_outside_is_clipped_with_warning(tiny_dirs: dict[str, Path], image: np.ndarray, caplog) -> None:
    predictor = Predictor(str(tiny_dirs["sam"]), device="cpu")
    out = predictor.predict(image, boxes=[[-10, -5, 200, 30]])
    assert out.masks.shape == (1, 45, 70) and "clipped" in caplog.text


def test_switching_equals_single_adapter_predictor(
    tiny_dirs: dict[str, Path], adapters: list[Path], image: np.ndarray
) -> None:
    both = Predictor(str(tiny_dirs["sam"]), adapters={"one": adapters[0], "two": adapters[1]}, device="cpu")
    boxes = [[20, 10, 50, 30]]
    outputs = {}
    for name in ("one", "two", "vanilla"):
        both.use(name)
        outputs[name] = both.predict(image, boxes=boxes)
    alone = Predictor(str(tiny_dirs["sam"]), adapters=[adapters[1]], device="cpu").predict(image, boxes=boxes)
    base = Predictor(str(tiny_dirs["sam"]), device="cpu").predict(image, boxes=boxes)
    assert np.array_equal(outputs["two"].masks, alone.masks) and np.allclose(
        outputs["two"].scores, alone.scores, atol=1e-6
    )
    assert np.array_equal(outputs["vanilla"].masks, base.masks)
    assert not np.allclose(outputs["one"].scores, outputs["two"].scores)


def test_fresh_two_adapter_predictor_runs_the_first_adapter(
    tiny_dirs: dict[str, Path], adapters: list[Path], image: np.ndarray
) -> None:
    both = Predictor(str(tiny_dirs["sam"]), adapters={"a": adapters[0], "b": adapters[1]}, device="cpu")
    assert both.active == "a"
    boxes = [[20, 10, 50, 30], [5, 5, 40, 40]]
    fresh = both.predict(image, boxes=boxes)  # no use() call
    alone = Predictor(str(tiny_dirs["sam"]), adapters={"a": adapters[0]}, device="cpu").predict(
        image, boxes=boxes
    )
    other = Predictor(str(tiny_dirs["sam"]), adapters={"b": adapters[1]}, device="cpu").predict(
        image, boxes=boxes
    )
    assert np.array_equal(fresh.masks, alone.masks) and np.allclose(fresh.scores, alone.scores, atol=1e-6)
    assert not np.allclose(fresh.scores, other.scores, atol=1e-4)


def test_use_keeps_the_image_and_reencodes_it_with_the_new_adapter(
    tiny_dirs: dict[str, Path], adapters: list[Path], image: np.ndarray
) -> None:
    boxes = [[20, 10, 50, 30], [5, 5, 40, 40]]
    single = {
        "a": Predictor(str(tiny_dirs["sam"]), adapters={"a": adapters[0]}, device="cpu"),
        "b": Predictor(str(tiny_dirs["sam"]), adapters={"b": adapters[1]}, device="cpu"),
        "vanilla": Predictor(str(tiny_dirs["sam"]), device="cpu"),
    }
    expected = {name: p.predict(image, boxes=boxes) for name, p in single.items()}
    both = Predictor(str(tiny_dirs["sam"]), adapters={"a": adapters[0], "b": adapters[1]}, device="cpu")
    both.set_image(image)
    for name in ("a", "b", "vanilla", "a", "b"):  # the README's use("skin"); predict(...) with no set_image
        both.use(name)
        got = both.predict(boxes=boxes)
        assert np.array_equal(got.masks, expected[name].masks), name
        assert np.allclose(got.scores, expected[name].scores, atol=1e-6), name
    assert not np.allclose(expected["a"].scores, expected["b"].scores, atol=1e-4)


def test_use_after_set_images_keeps_the_batch_and_selection(
    tiny_dirs: dict[str, Path], adapters: list[Path], image: np.ndarray
) -> None:
    other = np.ascontiguousarray(image[:, ::-1][:40])
    base = Predictor(str(tiny_dirs["sam"]), device="cpu").predict(other, points=[[10, 10]])
    predictor = Predictor(str(tiny_dirs["sam"]), adapters=[adapters[0]], device="cpu")
    predictor.set_images([image, other])
    predictor.select(1)
    predictor.predict(points=[[10, 10]])
    predictor.use("vanilla")
    got = predictor.predict(points=[[10, 10]])
    assert got.masks.shape == (1, 40, 70) and np.array_equal(got.masks, base.masks)
    assert np.allclose(got.scores, base.scores, atol=1e-6)


def test_predict_before_any_image_names_set_image(tiny_dirs: dict[str, Path], adapters: list[Path]) -> None:
    predictor = Predictor(str(tiny_dirs["sam"]), adapters=[adapters[0]], device="cpu")
    predictor.use("vanilla")
    with pytest.raises(SamloraError, match=r"call set_image\(image\)"):
        predictor.predict(boxes=[[1, 1, 10, 10]])


def test_merged_equals_unmerged(tiny_dirs: dict[str, Path], adapters: list[Path], image: np.ndarray) -> None:
    boxes = [[20, 10, 50, 30], [5, 5, 40, 40]]
    plain = Predictor(str(tiny_dirs["sam"]), adapters=[adapters[0]], device="cpu").predict(image, boxes=boxes)
    merged = Predictor(str(tiny_dirs["sam"]), adapters=[adapters[0]], device="cpu", merge=True).predict(
        image, boxes=boxes
    )
    assert np.allclose(plain.scores, merged.scores, atol=1e-5)
    assert (plain.masks == merged.masks).mean() > 0.999


def test_adapter_for_other_base_refused(tiny_dirs: dict[str, Path], adapters: list[Path]) -> None:
    with pytest.raises(AdapterError, match="family 'sam'"):
        Predictor(str(tiny_dirs["sam_hq"]), adapters=[adapters[0]], device="cpu")


@pytest.fixture()
def folder(tmp_path: Path, image: np.ndarray) -> Path:
    root = tmp_path / "photos"
    root.mkdir()
    for i in range(3):
        Image.fromarray(np.roll(image, 5 * i, axis=1)).save(root / f"p{i}.png")
    (root / "broken.jpg").write_bytes(b"not a jpeg")
    return root


def test_cli_predict_folder_writes_outputs(
    tiny_dirs: dict[str, Path], adapters: list[Path], folder: Path, tmp_path: Path, capsys
) -> None:
    from pycocotools.coco import COCO

    out = tmp_path / "pred"
    code = main(["predict", str(folder), "--adapter", str(adapters[0]), "--box", "20", "10", "50", "30", "--box", "0", "0", "10", "10", "--batch-size", "2",
                 "--output", str(out), "--device", "cpu", "--compare"])  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "3 images, 6 detections" in printed and "broken.jpg" in printed
    assert sorted(p.name for p in (out / "overlays").iterdir()) == ["p0.png", "p1.png", "p2.png"]
    assert len(list((out / "masks").iterdir())) == 6 and len(list((out / "panels").iterdir())) == 3
    images = json.loads((out / "images.json").read_text())
    assert [s[0].endswith("broken.jpg") for s in images["skipped"]] == [True]
    gt = COCO()
    gt.dataset = {"images": images["images"], "annotations": [], "categories": [{"id": 1, "name": "object"}]}
    gt.createIndex()
    results = gt.loadRes(str(out / "predictions.json"))
    assert len(results.getAnnIds()) == 6
    first = next(p for p in images["images"] if p["file_name"].endswith("p0.png"))
    api = Predictor(str(tiny_dirs["sam"]), adapters=[adapters[0]], device="cpu").predict(
        np.asarray(Image.open(folder / "p0.png")), boxes=[[20, 10, 50, 30], [0, 0, 10, 10]]
    )
    scores = sorted(a["score"] for a in results.loadAnns(results.getAnnIds(imgIds=[first["id"]])))
    assert scores == pytest.approx(sorted(api.scores.tolist()), abs=1e-5)


def _results_by_image(out: Path) -> dict[str, list[dict]]:
    """COCO results of a predict run keyed by image file name."""
    images = json.loads((out / "images.json").read_text())["images"]
    results = json.loads((out / "predictions.json").read_text())
    return {Path(i["file_name"]).name: [r for r in results if r["image_id"] == i["id"]] for i in images}


def _kept(pred) -> list[float]:
    """Scores of a prediction's non-empty masks (what the CLI writes), sorted."""
    return sorted(float(s) for m, s in zip(pred.masks, pred.scores) if m.any())


def test_cli_points_and_prompt_file(tiny_dirs: dict[str, Path], folder: Path, tmp_path: Path) -> None:
    objects = [[[10, 10], [30, 20]], [[40, 30], [5, 5]]]  # two point-prompted objects on one image
    prompts = tmp_path / "prompts.json"
    prompts.write_text(json.dumps({"p0.png": {"boxes": [[1, 1, 20, 20]]},
                                   "p1.png": {"points": objects, "labels": [[1, 0], [1, 1]]}}))  # fmt: skip
    out = tmp_path / "pred"
    code = main(["predict", str(folder), "--model", str(tiny_dirs["sam"]), "--prompts", str(prompts),
                 "--output", str(out), "--device", "cpu"])  # fmt: skip
    assert code == 0
    api = Predictor(str(tiny_dirs["sam"]), device="cpu")
    p1 = api.predict(np.asarray(Image.open(folder / "p1.png")), points=objects, point_labels=[[1, 0], [1, 1]])
    p0 = api.predict(np.asarray(Image.open(folder / "p0.png")), boxes=[[1, 1, 20, 20]])
    written = _results_by_image(out)
    assert set(written) == {"p0.png", "p1.png"}  # p2 is not in the file: skipped, reported
    assert sorted(r["score"] for r in written["p1.png"]) == pytest.approx(_kept(p1), abs=1e-5)
    assert sorted(r["score"] for r in written["p0.png"]) == pytest.approx(_kept(p0), abs=1e-5)
    out2 = tmp_path / "pred2"
    code = main(["predict", str(folder / "p2.png"), "--model", str(tiny_dirs["sam"]), "--point", "10", "10", "--point", "30", "20",
                 "--label", "1", "--label", "0", "--output", str(out2)])  # fmt: skip
    p2 = api.predict(
        np.asarray(Image.open(folder / "p2.png")), points=[[10, 10], [30, 20]], point_labels=[1, 0]
    )
    assert code == 0
    assert [r["score"] for r in _results_by_image(out2)["p2.png"]] == pytest.approx(_kept(p2), abs=1e-5)


def test_cli_text_prompts_return_instances_per_prompt(
    tiny_dirs: dict[str, Path], folder: Path, tmp_path: Path
) -> None:
    out = tmp_path / "pred"
    code = main(["predict", str(folder / "p0.png"), "--model", str(tiny_dirs["sam3"]), "--prompt", "square", "disc",
                 "--threshold", "0", "--nms-iou", "1", "--top-k", "6", "--output", str(out)])  # fmt: skip
    assert code == 0
    results = json.loads((out / "predictions.json").read_text())
    assert results and {r["category_id"] for r in results} <= {1, 2}


def test_cli_text_prompt_on_promptable_model_is_an_error(
    tiny_dirs: dict[str, Path], folder: Path, tmp_path: Path, capsys
) -> None:
    code = main(
        [
            "predict",
            str(folder / "p0.png"),
            "--model",
            str(tiny_dirs["sam"]),
            "--prompt",
            "crack",
            "--output",
            str(tmp_path / "o"),
        ]
    )
    assert code == 2
    assert "text prompts need a concept model" in capsys.readouterr().err and not (tmp_path / "o").exists()


def test_batched_encoding_equals_one_by_one(tiny_dirs: dict[str, Path], image: np.ndarray) -> None:
    predictor = Predictor(str(tiny_dirs["sam"]), device="cpu")
    other = np.ascontiguousarray(image[:, ::-1][:40])
    prompts = [{"boxes": [[20, 10, 50, 30]]}, {"points": [[10, 10]]}]
    batched = predictor.predict_batch([image, other], prompts)
    single = [predictor.predict(img, **kw) for img, kw in zip([image, other], prompts)]
    for a, b in zip(batched, single):
        assert a.masks.shape == b.masks.shape and np.allclose(a.scores, b.scores, atol=1e-5)
        assert (a.masks == b.masks).mean() > 0.999
