"""TensorBoard files land where README's "What a training run writes" says."""

from __future__ import annotations

import re
from pathlib import Path

from samlora.cli import main
from samlora.data.synthetic import write_mask_dataset

README = Path(__file__).resolve().parents[2] / "README.md"


def test_tensorboard_events_are_where_readme_says(tiny_dirs: dict[str, Path], tmp_path: Path) -> None:
    block = README.read_text().split("### What a training run writes", 1)[1].split("```")[1]
    (pattern,) = re.findall(r"^\s+(\S*events\.out\.tfevents\*)", block, flags=re.M)
    data = write_mask_dataset(tmp_path / "d", n_train=2, n_valid=0, seed=8)
    run = tmp_path / "run"
    code = main(
        ["train", "--model.name", str(tiny_dirs["sam"]), "--data.root", str(data), "--output.dir", str(run),
         "--data.val_fraction", "0", "--train.max_steps", "1", "--train.num_workers", "0",
         "--train.trackers", "[tensorboard]"]
    )  # fmt: skip
    assert code == 0
    assert list(run.glob(pattern)), sorted(str(p.relative_to(run)) for p in run.rglob("*"))
