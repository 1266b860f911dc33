"""``samlora train --resume RUN --train.max_steps N`` extends a finished run; a finished run says so."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from samlora.data.synthetic import write_mask_dataset
from samlora.training.log import read_log

from ..cli.test_cli import run


def test_extend_a_finished_run_keeping_every_other_setting(
    tiny_dirs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_mask_dataset(tmp_path / "d", n_train=4, n_valid=1, seed=7)
    out = tmp_path / "run"
    code, _, err = run(
        ["train", "--model.name", str(tiny_dirs["sam"]), "--data.root", str(data), "--output.dir", str(out),
         "--train.max_steps", "2", "--train.batch_size", "2", "--train.num_workers", "0", "--train.log_every", "1",
         "--train.trackers", "[none]", "--lora.rank", "2", "--train.lr", "0.002"],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    before = yaml.safe_load((out / "config.yaml").read_text())

    code, stdout, _ = run(["train", "--resume", str(out)], capsys)  # finished: says so, trains nothing
    assert code == 0 and "is finished: step 2 of 2" in stdout and "--train.max_steps N (N > 2)" in stdout
    assert [r["step"] for r in read_log(out) if r["split"] == "train"] == [1, 2]

    code, _, err = run(["train", "--resume", str(out), "--train.max_steps", "2"], capsys)
    assert code == 2 and "at step 2 already" in err
    code, _, err = run(["train", "--resume", str(out), "--train.max_steps", "4", "--train.lr", "1"], capsys)
    assert code == 2 and "train.lr" in err

    code, _, err = run(["train", "--resume", str(out), "--train.max_steps", "4"], capsys)
    assert code == 0, err
    assert [r["step"] for r in read_log(out) if r["split"] == "train"] == [1, 2, 3, 4]
    after = yaml.safe_load((out / "config.yaml").read_text())
    assert after["train"].pop("max_steps") == 4 and before["train"].pop("max_steps") == 2
    assert after == before  # every other setting kept
    code, stdout, _ = run(["train", "--resume", str(out)], capsys)
    assert code == 0 and "is finished: step 4 of 4" in stdout

    code, _, err = run(["train", "--resume", str(out), "--train.epochs", "3"], capsys)  # epochs decide now
    assert code == 0, err
    assert yaml.safe_load((out / "config.yaml").read_text())["train"]["max_steps"] == 0
    code, stdout, _ = run(["train", "--resume", str(out)], capsys)
    assert code == 0 and "is finished: epoch 3 of 3" in stdout
