"""``samlora predict --onnx DIR`` gives the masks of ``samlora predict`` on onnxruntime; bad folders are refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from samlora.cli import main
from samlora.errors import ExportError, SamloraError
from samlora.export.graphs import PROMPTABLE, prompt_tokens
from samlora.export.runtime import OnnxBackend
from samlora.predict.predictor import Predictor

# one image per prompt kind: boxes, a single click (multimask), a box with a positive and a negative point
PROMPTS = {
    "im0.png": {"boxes": [[5, 4, 40, 30], [30, 10, 69, 44]]},
    "im1.png": {"points": [[30, 22]]},
    "im2.png": {"boxes": [[4, 6, 45, 60]], "points": [[20, 30], [40, 70]], "labels": [1, 0]},
}


def predict(args: list[str], out: Path, photos: Path, prompts: Path) -> list[dict]:
    assert main(["predict", str(photos), "--prompts", str(prompts), "--output", str(out), *args]) == 0
    return json.loads((out / "predictions.json").read_text())


def assert_same_mask(ours: dict, theirs: dict) -> None:
    """The same mask and box, or (onnxruntime and torch sum in different orders, and a random tiny
    model has many logits near 0) masks that differ in at most 0.5 % of the image's pixels."""
    if ours["segmentation"] == theirs["segmentation"]:
        assert ours["bbox"] == theirs["bbox"]
        return
    a, b = (mask_utils.decode(x["segmentation"]).astype(bool) for x in (ours, theirs))
    assert (a != b).sum() <= 0.005 * a.size and (a & b).sum() >= 0.99 * (a | b).sum(), (ours, theirs)


@pytest.mark.parametrize("family", PROMPTABLE)
def test_predict_onnx_gives_the_masks_of_predict(
    family: str, exports: dict[str, Path], tiny_adapters: dict[str, Path], photos: Path, tmp_path: Path
) -> None:
    prompts = tmp_path / "prompts.json"
    prompts.write_text(json.dumps(PROMPTS))
    torch_out = predict(["--adapter", str(tiny_adapters[family])], tmp_path / "torch", photos, prompts)
    onnx_out = predict(["--onnx", str(exports[family])], tmp_path / "onnx", photos, prompts)
    assert len(onnx_out) == len(torch_out) > 0
    for ours, theirs in zip(onnx_out, torch_out):
        assert ours["image_id"] == theirs["image_id"] and abs(ours["score"] - theirs["score"]) < 1e-5
        assert_same_mask(ours, theirs)
    for sub in ("overlays", "masks"):
        assert sorted(p.name for p in (tmp_path / "onnx" / sub).iterdir()) == sorted(
            p.name for p in (tmp_path / "torch" / sub).iterdir()
        )


def test_predictor_api_over_the_backend(exports: dict[str, Path], image: np.ndarray) -> None:
    predictor = Predictor(backend=OnnxBackend(exports["sam2"], device="cpu"))
    assert predictor.active == "onnx" and predictor.prompt_types == ["box", "points"]
    out = predictor.predict(image=image, boxes=[[20, 10, 50, 30]])
    assert out.masks.shape == (1, 45, 70) and out.prompt_index.tolist() == [0]
    with pytest.raises(SamloraError, match="give no model, adapters or merge"):
        Predictor(adapters=["somewhere"], backend=OnnxBackend(exports["sam"]))


def test_bad_onnx_folders_are_refused(
    exports: dict[str, Path],
    tiny_dirs: dict[str, Path],
    tmp_path: Path,
    photos: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(ExportError, match="does not exist"):
        OnnxBackend(tmp_path / "missing")
    with pytest.raises(ExportError, match="not a samlora ONNX export"):
        OnnxBackend(tiny_dirs["sam"])
    with pytest.raises(ExportError, match="no fp16 graphs.*--fp16"):
        OnnxBackend(exports["sam"], precision="fp16")
    code = main(
        ["predict", str(photos), "--onnx", str(exports["sam"]), "--adapter", "x", "--box", "1", "1", "5", "5"]
    )
    assert code == 2 and "drop --model, --adapter and --compare" in capsys.readouterr().err


def test_prompt_tokens_follow_each_familys_padding() -> None:
    boxes, points, labels = np.array([[1.0, 2, 3, 4]]), np.array([[[5.0, 6]]]), np.array([[1]])
    import torch

    b, p, lab = torch.tensor(boxes), torch.tensor(points), torch.tensor(labels)
    assert prompt_tokens("sam", boxes=b)[1].tolist() == [[2, 3]]
    assert prompt_tokens("sam", points=p, labels=lab)[1].tolist() == [[1, -1]]
    assert prompt_tokens("sam2", boxes=b, points=p, labels=lab)[1].tolist() == [[1, 2, 3, -1]]
    coords = prompt_tokens("sam2", boxes=b, points=p, labels=lab)[0]
    assert coords.tolist() == [[[5.0, 6.0], [1.0, 2.0], [3.0, 4.0], [0.0, 0.0]]]
