"""``samlora predict`` as the SAM3-LoRA tool's users call it (``--image``, ``--boundingbox``, ``--output
result.png``), prompts-file entries that match no image, and ``--min-area`` removing specks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from .test_inputs import _run as predict


@pytest.fixture()
def photos(tmp_path: Path, image: np.ndarray) -> Path:
    """Two shifted copies of the shared test image."""
    root = tmp_path / "photos"
    root.mkdir()
    for i in range(2):
        Image.fromarray(np.roll(image, 7 * i, axis=1)).save(root / f"p{i}.png")
    return root


BOXES = ["--box", "5", "5", "60", "40", "--box", "0", "0", "30", "30"]


def test_image_flag_and_an_image_output_write_one_overlay_and_its_json(
    tiny_dirs: dict[str, Path], photos: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "out" / "predictions.png"
    assert (
        predict(
            "--image",
            str(photos / "p0.png"),
            "--model",
            str(tiny_dirs["sam"]),
            *BOXES,
            "--output",
            str(target),
        )
        == 0
    )
    assert target.is_file() and Image.open(target).size == (70, 45)  # the overlay, at the image's size
    table = json.loads(target.with_suffix(".json").read_text())
    assert [i["file_name"] for i in table["images"]] == [str(photos / "p0.png")]
    assert len(table["predictions"]) == 2 and {"segmentation", "bbox", "score"} <= set(
        table["predictions"][0]
    )
    assert sorted(p.name for p in target.parent.iterdir()) == ["predictions.json", "predictions.png"]
    capsys.readouterr()
    code = predict(
        str(photos), "--model", str(tiny_dirs["sam"]), *BOXES, "--output", str(tmp_path / "many.png")
    )
    assert code == 2 and "holds 2 images" in capsys.readouterr().err and not (tmp_path / "many.png").exists()
    code = predict(
        str(photos / "p0.png"), "--image", str(photos / "p1.png"), "--model", str(tiny_dirs["sam"]), *BOXES
    )
    assert code == 2 and "pass one" in capsys.readouterr().err


def test_boundingbox_true_false_is_boxes_or_no_boxes(
    tiny_dirs: dict[str, Path], photos: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def overlay(*flags: str) -> np.ndarray:
        target = tmp_path / f"o{len(list(tmp_path.iterdir()))}.png"
        assert predict("--image", str(photos / "p0.png"), "--model", str(tiny_dirs["sam"]), *BOXES, *flags,
                       "--output", str(target)) == 0  # fmt: skip
        return np.asarray(Image.open(target))

    boxes, no_boxes = overlay(), overlay("--no-boxes")
    assert not np.array_equal(boxes, no_boxes)
    assert np.array_equal(overlay("--boundingbox", "True"), boxes)
    assert np.array_equal(overlay("--boundingbox", "false"), no_boxes)
    capsys.readouterr()
    assert predict(str(photos), "--model", str(tiny_dirs["sam"]), *BOXES, "--boundingbox", "maybe") == 2
    assert "--boundingbox takes true or false" in capsys.readouterr().err


def test_prompts_file_entries_matching_no_image_are_listed(
    tiny_dirs: dict[str, Path], photos: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prompts = tmp_path / "prompts.json"
    prompts.write_text(
        json.dumps({"p0.png": {"boxes": [[5, 5, 60, 40]]}, "p7.png": {"boxes": [[1, 1, 9, 9]]}})
    )
    out = tmp_path / "o"
    assert (
        predict(
            str(photos), "--model", str(tiny_dirs["sam"]), "--prompts", str(prompts), "--output", str(out)
        )
        == 0
    )
    stdout = capsys.readouterr().out
    assert f"1 entry of {prompts} matched no image" in stdout and "  p7.png" in stdout
    assert json.loads((out / "images.json").read_text())["unmatched_prompts"] == ["p7.png"]


def _components(folder: Path) -> list[list[int]]:
    """Sizes of the 8-connected pieces of each mask PNG in ``folder``."""
    sizes = []
    for path in sorted(folder.glob("*.png")):
        labels, _ = ndimage.label(np.asarray(Image.open(path)) > 0, structure=np.ones((3, 3)))
        sizes.append(sorted(np.bincount(labels.ravel())[1:].tolist()))
    return sizes


def test_min_area_removes_specks_from_kept_masks_unless_keep_specks(
    tiny_dirs: dict[str, Path], photos: Path, tmp_path: Path
) -> None:
    def masks(*flags: str) -> list[list[int]]:
        out = tmp_path / f"o{len(list(tmp_path.iterdir()))}"
        assert (
            predict(
                str(photos / "p0.png"), "--model", str(tiny_dirs["sam"]), *BOXES, *flags, "--output", str(out)
            )
            == 0
        )
        return _components(out / "masks")

    plain = masks()
    assert any(min(sizes) < 4 for sizes in plain)  # the tiny random model leaves specks
    cleaned = masks("--min-area", "4")
    assert len(cleaned) == len(plain) and all(min(sizes) >= 4 for sizes in cleaned)
    assert [[s for s in sizes if s >= 4] for sizes in plain] == cleaned  # only the specks went
    assert masks("--min-area", "4", "--keep-specks") == plain
