"""``samlora config validate`` checks what ``samlora train`` would refuse, before loading any weights."""

from __future__ import annotations

from pathlib import Path

import pytest

from samlora.data.synthetic import write_mask_dataset

from ..cli.test_cli import run


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_mask_dataset(tmp_path_factory.mktemp("shapes"), n_train=2, n_valid=1, seed=4)


def test_a_config_that_validates_names_what_was_checked(
    tiny_dirs: dict[str, Path], data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [
        "--model.name",
        str(tiny_dirs["sam"]),
        "--data.root",
        str(data),
        "--output.dir",
        str(tmp_path / "run"),
    ]
    code, out, err = run(["config", "validate", *args], capsys)
    assert code == 0, err
    assert "valid (data, model components and targets, output folder checked)" in out


def test_every_problem_train_would_meet_is_reported_at_once(
    tiny_dirs: dict[str, Path], data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "a-file").write_text("x")
    args = [
        "config", "validate", "--model.name", str(tiny_dirs["sam"]), "--data.root", str(data),
        "--data.train_split", "trian", "--lora.components", "[vision_encodr]",
        "--output.dir", str(tmp_path / "a-file" / "run"),
    ]  # fmt: skip
    code, _, err = run(args, capsys)
    assert code == 2 and "3 problem(s)" in err and "Traceback" not in err
    assert "no 'trian' split" in err  # the data root lacks the named split
    assert "['vision_encodr'] do not exist" in err and "vision_encoder" in err  # checked against the model
    assert "cannot be written" in err and "a-file" in err


def test_missing_data_root_and_unknown_target(
    tiny_dirs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(
        ["config", "validate", "--model.name", str(tiny_dirs["sam3"]), "--lora.components", "[text_encoder]",
         "--lora.target_modules", "[q_prj]", "--output.dir", str(tmp_path / "run")],
        capsys,
    )  # fmt: skip
    assert code == 2 and "2 problem(s)" in err
    assert "'data.root' is not set" in err and "target module 'q_prj' matches no linear layer" in err
    code, _, err = run(["config", "validate", "--data.root", str(tmp_path / "nowhere")], capsys)
    assert code == 2 and "does not exist" in err and "nowhere" in err


def test_a_model_that_is_not_here_is_a_note_and_a_missing_valid_split_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_mask_dataset(tmp_path / "noval", n_train=2, n_valid=0, seed=5)
    code, out, err = run(
        ["config", "validate", "--model.name", "someone/not-cached", "--data.root", str(data),
         "--data.val_fraction", "0", "--output.dir", str(tmp_path / "run")],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    assert "note: model someone/not-cached is not on this machine" in out
    assert "has no 'valid' split" in out


def test_train_refuses_before_loading_the_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A hub id that is not here would take the loading path; the misspelt split is found first."""
    data = write_mask_dataset(tmp_path / "d", n_train=2, n_valid=1, seed=6)
    code, _, err = run(
        ["train", "--model.name", "someone/not-cached", "--data.root", str(data), "--data.train_split", "trian",
         "--output.dir", str(tmp_path / "run")],
        capsys,
    )  # fmt: skip
    assert code == 2 and "no 'trian' split" in err and "Could not load model" not in err
    assert not (tmp_path / "run").exists()
