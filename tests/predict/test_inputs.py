"""Inference edge cases: working resolution, COCO prompt files, post-processing, nested folders, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from samlora.cli import main
from samlora.errors import PromptError, SamloraError
from samlora.predict.predictor import Predictor
from samlora.tasks.postprocess import PostProcess

from .test_predictor import make_adapter


@pytest.fixture()
def folder(tmp_path: Path, image: np.ndarray) -> Path:
    root = tmp_path / "photos"
    root.mkdir()
    for i in range(3):
        Image.fromarray(np.roll(image, 5 * i, axis=1)).save(root / f"p{i}.png")
    return root


def _run(*argv: str) -> int:
    return main(["predict", *argv, "--device", "cpu"])


def test_resolution_keeps_outputs_at_original_size(
    tiny_dirs: dict[str, Path], folder: Path, tmp_path: Path
) -> None:
    from pycocotools import mask as mask_utils

    out = tmp_path / "o"
    code = _run(str(folder / "p0.png"), "--model", str(tiny_dirs["sam"]), "--box", "20", "10", "50", "30",
                "--resolution", "30", "--output", str(out))  # fmt: skip
    assert code == 0
    [result] = json.loads((out / "predictions.json").read_text())
    assert result["segmentation"]["size"] == [45, 70]
    assert json.loads((out / "images.json").read_text())["images"][0]["height"] == 45
    assert Image.open(out / "overlays" / "p0.png").size == (70, 45)
    assert Image.open(out / "masks" / "p0_0.png").size == (70, 45)
    api = Predictor(str(tiny_dirs["sam"]), device="cpu", resolution=30)
    pred = api.predict(np.asarray(Image.open(folder / "p0.png")), boxes=[[20, 10, 50, 30]])
    assert pred.masks.shape == (1, 45, 70)
    assert np.array_equal(mask_utils.decode(result["segmentation"]).astype(bool), pred.masks[0])


def test_cli_coco_prompts_keep_categories_and_unique_ids(
    tiny_dirs: dict[str, Path], folder: Path, tmp_path: Path
) -> None:
    coco = {
        "images": [{"id": 2, "file_name": "p0.png"}, {"id": 1, "file_name": "elsewhere.png"}],
        "categories": [{"id": 5, "name": "square"}, {"id": 7, "name": "disc"}],
        "annotations": [
            {"id": 1, "image_id": 2, "category_id": 5, "bbox": [20, 10, 30, 20],
             "segmentation": [[20, 10, 50, 10, 50, 30, 20, 30]]},
            {"id": 2, "image_id": 2, "category_id": 7, "bbox": [0, 0, 10, 10]},
        ],
    }  # fmt: skip
    (tmp_path / "coco.json").write_text(json.dumps(coco))
    out = tmp_path / "o"
    code = _run(str(folder), "--model", str(tiny_dirs["sam"]), "--prompts", str(tmp_path / "coco.json"),
                "--box", "0", "0", "30", "30", "--output", str(out))  # fmt: skip
    assert code == 0
    table = json.loads((out / "images.json").read_text())
    ids = {Path(i["file_name"]).name: i["id"] for i in table["images"]}
    assert (
        ids["p0.png"] == 2 and len(set(ids.values()) | {1}) == 4
    )  # the others get 3, 4: no clash with 1 or 2
    assert {(c["id"], c["name"]) for c in table["categories"]} == {(5, "square"), (7, "disc")}
    results = json.loads((out / "predictions.json").read_text())
    assert sorted(r["category_id"] for r in results if r["image_id"] == 2) == [5, 7]
    assert {r["category_id"] for r in results if r["image_id"] != 2} == {1}


def test_box_prompt_post_processing(
    tiny_dirs: dict[str, Path], image: np.ndarray, folder: Path, tmp_path: Path
) -> None:
    predictor = Predictor(str(tiny_dirs["sam"]), device="cpu")
    boxes = [[20, 10, 50, 30], [0, 0, 30, 20], [40, 5, 69, 44]]
    plain = predictor.predict(image, boxes=boxes)
    assert len(plain) == 3 and plain.prompt_index.tolist() == [0, 1, 2]  # without post: one mask per prompt
    cut = float(np.median(plain.scores))
    kept = predictor.predict(boxes=boxes, post=PostProcess(threshold=cut))
    assert kept.prompt_index.tolist() == [
        k for k in range(3) if plain.scores[k] >= cut and plain.masks[k].any()
    ]
    assert len(predictor.predict(boxes=boxes, post=PostProcess(threshold=-1e9, min_area=10**6))) == 0
    filled = predictor.predict(boxes=boxes, post=PostProcess(threshold=-1e9, fill_holes=True))
    from scipy import ndimage

    assert all(np.array_equal(m, ndimage.binary_fill_holes(m)) for m in filled.masks)
    out = tmp_path / "o"  # CLI: --min-area drops; nothing empty is ever written
    code = _run(str(folder), "--model", str(tiny_dirs["sam"]), "--box", "20", "10", "50", "30",
                "--box", "0", "0", "30", "20", "--min-area", "50", "--output", str(out))  # fmt: skip
    results = json.loads((out / "predictions.json").read_text())
    assert code == 0 and all(r["bbox"][2] * r["bbox"][3] > 0 and r["segmentation"]["counts"] for r in results)
    assert len(list((out / "masks").iterdir())) == len(results)
    from pycocotools import mask as mask_utils

    assert all(mask_utils.area(r["segmentation"]) >= 50 for r in results)


def test_nested_folders_do_not_collide(tiny_dirs: dict[str, Path], image: np.ndarray, tmp_path: Path) -> None:
    root = tmp_path / "nested"
    for sub in ("a", "b"):
        (root / sub).mkdir(parents=True)
        Image.fromarray(image).save(root / sub / "x.png")
    Image.fromarray(image).save(root / "a" / "x.jpg")
    out = tmp_path / "o"
    assert (
        _run(
            str(root), "--model", str(tiny_dirs["sam"]), "--box", "20", "10", "50", "30", "--output", str(out)
        )
        == 0
    )
    overlays = sorted(p.relative_to(out / "overlays").as_posix() for p in (out / "overlays").rglob("*.png"))
    assert overlays == ["a/x.jpg.png", "a/x.png.png", "b/x.png"]


def test_bad_prompts_file_is_reported_whole_before_anything_runs(
    tiny_dirs: dict[str, Path], folder: Path, tmp_path: Path, capsys
) -> None:
    bad = {"p0.png": {"boxes": [[1, 2, 3]]}, "p1.png": {"points": [[1, 2]], "labels": [3]}, "p2.png": [1, 2]}
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    out = tmp_path / "o"
    code = _run(
        str(folder),
        "--model",
        str(tiny_dirs["sam"]),
        "--prompts",
        str(tmp_path / "bad.json"),
        "--output",
        str(out),
    )
    err = capsys.readouterr().err
    assert code == 2 and not out.exists()
    assert "3 problem(s) in prompts file" in err and str(tmp_path / "bad.json") in err
    assert (
        "'p0.png': box [1, 2, 3] is not 4 numbers" in err
        and "'p1.png': labels [3]" in err
        and "'p2.png'" in err
    )


def test_merged_predictor_refuses_switching(
    tiny_dirs: dict[str, Path], tmp_path: Path, image: np.ndarray
) -> None:
    adapter = make_adapter(tiny_dirs["sam"], tmp_path / "run" / "best", seed=3)
    merged = Predictor(
        str(tiny_dirs["sam"]), adapters=[tmp_path / "run"], device="cpu", merge=True
    )  # run folder
    assert merged.adapter_names == ["run"]
    with pytest.raises(SamloraError, match="merged into the weights"):
        merged.use("vanilla")
    merged.use("run")  # the merged adapter itself stays usable
    plain = Predictor(str(tiny_dirs["sam"]), adapters=[adapter], device="cpu")
    assert np.allclose(merged.predict(image, boxes=[[20, 10, 50, 30]]).scores,
                       plain.predict(image, boxes=[[20, 10, 50, 30]]).scores, atol=1e-5)  # fmt: skip


def test_torch_images_are_read_like_numpy(tiny_dirs: dict[str, Path], image: np.ndarray) -> None:
    predictor = Predictor(str(tiny_dirs["sam"]), device="cpu")
    box = [[20, 10, 50, 30]]
    ref = predictor.predict(image, boxes=box)
    chw = predictor.predict(torch.from_numpy(image).permute(2, 0, 1), boxes=box)
    assert isinstance(chw.masks, torch.Tensor) and torch.equal(chw.masks, torch.from_numpy(ref.masks))
    rgba = np.concatenate([image, np.full((45, 70, 1), 255, np.uint8)], axis=2)
    assert np.allclose(
        predictor.predict(torch.from_numpy(rgba), boxes=box).scores.numpy(), ref.scores, atol=1e-6
    )
    grey = predictor.predict(image[..., 0], boxes=box)
    assert np.allclose(
        predictor.predict(torch.from_numpy(image[..., 0]), boxes=box).scores.numpy(), grey.scores
    )
    with pytest.raises(PromptError, match="must be uint8"):
        predictor.predict(torch.from_numpy(image).permute(2, 0, 1).float() / 255, boxes=box)
    with pytest.raises(PromptError, match="must be uint8"):
        predictor.predict(image.astype(np.float32), boxes=box)


def test_box_outside_image(
    tiny_dirs: dict[str, Path], image: np.ndarray, folder: Path, tmp_path: Path, caplog
) -> None:
    predictor = Predictor(str(tiny_dirs["sam"]), device="cpu")
    with pytest.raises(PromptError, match=r"box \[100.0, 100.0, 200.0, 200.0\] lies outside the 70x45 image"):
        predictor.predict(image, boxes=[[100, 100, 200, 200]])
    out = tmp_path / "o"  # CLI: that box is skipped with a warning, the other one predicted
    code = _run(str(folder / "p0.png"), "--model", str(tiny_dirs["sam"]), "--box", "100", "100", "200", "200",
                "--box", "20", "10", "50", "30", "--output", str(out))  # fmt: skip
    assert code == 0 and "box [100.0, 100.0, 200.0, 200.0] lies outside" in caplog.text
    assert len(json.loads((out / "predictions.json").read_text())) == 1


def test_cli_fails_when_nothing_can_be_predicted(
    tiny_dirs: dict[str, Path], folder: Path, tmp_path: Path, capsys
) -> None:
    model = ["--model", str(tiny_dirs["sam"])]
    code = _run(str(folder), *model, "--box", "1", "1", "9", "9", "--box", "2", "2", "9", "9", "--point", "5", "5",
                "--output", str(tmp_path / "o1"))  # fmt: skip
    assert code == 2 and "2 --box and 1 --point" in capsys.readouterr().err and not (tmp_path / "o1").exists()
    (tmp_path / "empty").mkdir()
    code = _run(
        str(tmp_path / "empty"), *model, "--box", "1", "1", "9", "9", "--output", str(tmp_path / "o2")
    )
    assert code == 2 and "no images in folder" in capsys.readouterr().err
    code = _run(str(folder), *model, "--box", "100", "100", "200", "200", "--output", str(tmp_path / "o3"))
    assert code != 0 and "no image could be predicted; all 3 skipped" in capsys.readouterr().err


def test_api_refuses_bad_arguments(tiny_dirs: dict[str, Path], image: np.ndarray) -> None:
    sam3 = Predictor(str(tiny_dirs["sam3"]), device="cpu")
    sam3.set_image(image)
    with pytest.raises(PromptError, match="cannot be combined"):
        sam3.predict(text=["square"], boxes=[[1, 1, 9, 9]])
    with pytest.raises(PromptError, match="holds no prompt"):
        sam3.predict(text=[])
    sam = Predictor(str(tiny_dirs["sam"]), device="cpu", precision="fp32")
    assert sam.precision == "no"
    with pytest.raises(PromptError, match=r"N x 4 XYXY pixels, got shape \(3,\)"):
        sam.predict(image, boxes=[1, 2, 3])
    with pytest.raises(SamloraError, match="out of range"):
        sam.select(5)
    with pytest.raises(PromptError, match="2 images but 1 prompt dicts"):
        sam.predict_batch([image, image], [{"boxes": [[1, 1, 9, 9]]}])
    with pytest.raises(SamloraError, match="precision 'fp64'"):
        Predictor(str(tiny_dirs["sam"]), device="cpu", precision="fp64")


def test_cli_text_prompts_keep_known_class_ids(
    tiny_dirs: dict[str, Path], folder: Path, tmp_path: Path
) -> None:
    adapter = make_adapter(tiny_dirs["sam3"], tmp_path / "c", seed=1)  # class_names {1: "square"}
    out = tmp_path / "o"
    code = _run(str(folder / "p0.png"), "--adapter", str(adapter), "--prompt", "crack", "square",
                "--threshold", "0", "--nms-iou", "1", "--nms-kind", "box", "--top-k", "2", "--no-boxes",
                "--output", str(out))  # fmt: skip
    assert code == 0
    categories = json.loads((out / "images.json").read_text())["categories"]
    assert {(c["id"], c["name"]) for c in categories} == {(1, "square"), (2, "crack")}
    results = json.loads((out / "predictions.json").read_text())
    counts = {cid: sum(r["category_id"] == cid for r in results) for cid in (1, 2)}
    assert set(r["category_id"] for r in results) <= {1, 2} and max(counts.values()) <= 2 and results
