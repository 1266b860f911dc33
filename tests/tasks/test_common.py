"""Opening a run's splits: a Roboflow super-category is said once per data set, at info level."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from samlora.cli import main
from samlora.data.synthetic import write_coco_dataset


def roboflow_export(root: Path) -> Path:
    """A COCO export whose splits carry Roboflow's unannotated super-category (id 0)."""
    write_coco_dataset(root, n_train=2, n_valid=1, size=32)
    for split in ("train", "valid"):
        path = root / split / "_annotations.coco.json"
        data = json.loads(path.read_text())
        for category in data["categories"]:
            category["supercategory"] = "shapes"
        data["categories"].insert(0, {"id": 0, "name": "shapes", "supercategory": "none"})
        path.write_text(json.dumps(data))
    return root


def test_super_category_is_reported_once_at_info_and_listed_by_data_check(
    tiny_dirs: dict[str, Path],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    data = roboflow_export(tmp_path / "export")
    caplog.set_level(logging.INFO)
    code = main(
        ["train", "--model.name", str(tiny_dirs["sam3"]), "--data.root", str(data), "--output.dir", str(tmp_path / "run"),
         "--lora.components", "[detr_decoder]", "--train.max_steps", "1", "--train.batch_size", "1",
         "--train.num_workers", "0", "--train.trackers", "[none]"]
    )  # fmt: skip
    assert code == 0
    about = [r for r in caplog.records if "'shapes'" in r.getMessage() and "category id 0" in r.getMessage()]
    assert [r.levelno for r in about] == [logging.INFO], [r.getMessage() for r in about]
    assert "no text prompt" in about[0].getMessage()
    capsys.readouterr()
    assert main(["data", "check", str(data)]) == 0
    listed = [line for line in capsys.readouterr().out.splitlines() if "category id 0" in line]
    assert len(listed) == 2 and all("super-category" in line for line in listed)  # one per split
