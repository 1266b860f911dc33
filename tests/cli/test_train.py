"""`samlora train --seeds`: one run per seed, the comparison command, and eval of their parent folder."""

from __future__ import annotations

import json
from pathlib import Path

from samlora.cli import main
from samlora.config import read_yaml
from samlora.data.synthetic import write_mask_dataset


def test_seeds_train_one_run_each_and_eval_takes_their_parent(
    tiny_dirs: dict[str, Path], tmp_path: Path, capsys
) -> None:
    data = write_mask_dataset(tmp_path / "data", n_train=4, n_valid=2, n_test=2, seed=4)
    output = tmp_path / "runs" / "polyp"
    argv = [
        "train",
        "--model.name",
        str(tiny_dirs["sam"]),
        "--data.root",
        str(data),
        "--output.dir",
        str(output),
    ]
    argv += [
        "--train.max_steps",
        "2",
        "--train.batch_size",
        "2",
        "--train.num_workers",
        "0",
        "--train.trackers",
        "[none]",
    ]
    assert main(argv + ["--seeds", "3", "5"]) == 0
    printed = capsys.readouterr().out
    runs = [tmp_path / "runs" / "polyp_s3", tmp_path / "runs" / "polyp_s5"]
    for run, seed in zip(runs, (3, 5)):
        assert (run / "best" / "adapter_model.safetensors").is_file()
        cfg = read_yaml(run / "config.yaml")
        assert cfg["train"]["seed"] == seed and cfg["output"]["dir"] == str(run)
    assert f"samlora eval {runs[0]} {runs[1]} --base" in printed
    assert f"samlora eval {tmp_path / 'runs'} --base" in printed

    out = tmp_path / "eval"
    assert main(["eval", str(tmp_path / "runs"), "--base", "--eval.panels", "0", "--output", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["models"] == ["vanilla", "polyp_s3", "polyp_s5"]
    assert report["adapters_mean_std"]["data"]["n"] == 2  # mean ± std over the two seeds

    assert main(argv + ["--seeds", "3", "3"]) == 2
    assert "lists a seed twice" in capsys.readouterr().err
