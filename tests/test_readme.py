"""README.md's Python blocks run as written, in order, in a folder holding the files they name."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from samlora.cli import main
from samlora.config import config_from_dict
from samlora.data.synthetic import write_coco_dataset, write_mask_dataset
from samlora.training.trainer import train

README = Path(__file__).resolve().parents[1] / "README.md"
QUICK = {"num_workers": 0, "log_every": 1, "trackers": ["none"], "batch_size": 2}


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


def test_readme_python_blocks_run(tiny_dirs: dict[str, Path], tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (300, 400, 3), dtype=np.uint8)).save("photo.jpg")
    write_mask_dataset(Path("data/polyp"), n_train=2, n_valid=0, size=64)
    # what the README says exists besides runs/polyp: a second adapter and a SAM 3 text-prompt adapter
    train(
        config_from_dict(
            {
                "model": {"name": "samlora-reference"},
                "data": {"root": "data/polyp"},
                "train": {"max_steps": 1, **QUICK},
                "output": {"dir": "runs/skin"},
            }
        )
    )
    coco = write_coco_dataset(tmp_path / "coco", n_train=2, n_valid=0, size=48)
    train(
        config_from_dict(
            {
                "model": {"name": str(tiny_dirs["sam3"])},
                "lora": {"components": ["detr_decoder"], "target_modules": ["all-linear"]},
                "data": {"root": str(coco)},
                "train": {"max_steps": 1, **QUICK},
                "output": {"dir": "runs/cracks"},
            }
        )
    )
    assert main(["predict", "photo.jpg", "--adapter", "runs/skin", "--box", "10", "20", "200", "220",
                 "--output", "preds"]) == 0  # fmt: skip
    blocks = python_blocks(README.read_text())
    assert len(blocks) >= 3
    namespace: dict[str, object] = {}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)  # noqa: S102
    assert Path("runs/polyp/best/adapter_model.safetensors").is_file()
    out = namespace["out"]
    assert out.masks.shape == (1, 300, 400) and namespace["two"].masks.shape[0] == 2
    assert len(namespace["cracks"].labels) == len(namespace["cracks"].masks)


def test_public_api_is_lazy() -> None:
    import subprocess
    import sys

    code = "import samlora, sys; print(samlora.__version__, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split()[1] == "False"
    import samlora

    assert callable(samlora.train) and samlora.Predictor.__name__ == "Predictor"
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        samlora.nope  # noqa: B018
