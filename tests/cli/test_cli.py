"""CLI contract: help for every flag, info on tiny models, config errors with exit status 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from samlora.cli import main
from samlora.models.families import FAMILY_NAMES


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_console_script_help() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "samlora", "--help"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0
    for name in ("info", "config", "adapters"):
        assert name in result.stdout


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_info_each_family(
    tiny_dirs: dict[str, Path], family: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(
        ["info", str(tiny_dirs[family]), "--report", "--lora.target_modules", "[all-linear]"], capsys
    )
    assert code == 0
    assert f"family:      {family}" in out and "vision_encoder" in out and "trainable %" in out


def test_info_presets(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["info", "--presets"], capsys)
    assert code == 0 and "tiny-sam" in out


def test_every_flag_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["config", "show", "--help"])
    out = capsys.readouterr().out
    assert "--lora.rank RANK" in out and "Rank r of the update" in out
    assert "--train.grad_accum" in out and "Micro-batches accumulated" in out


def test_typo_in_yaml_exits_2_with_suggestion(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("lora:\n  rnak: 4\n")
    code, _, err = run(["config", "validate", "--config", str(path)], capsys)
    assert code == 2 and "lora.rank" in err and "Traceback" not in err


def test_unknown_flag_suggests(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["config", "validate", "--train.learning_rate", "0.1"], capsys)
    assert code == 2 and "train.lr" in err


def test_override_on_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("lora:\n  rank: 4\n")
    code, out, _ = run(
        ["config", "show", "--config", str(path), "--lora.rank", "8", "--train.precision", "bf16"], capsys
    )
    assert code == 0 and "rank: 8" in out and "precision: bf16" in out


def test_bad_model_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["info", "someone/not-a-cached-model"], capsys)
    assert code == 2 and "local folder" in err


@pytest.mark.parametrize("name", ["./nonexistent/model", "/no/such/folder", "runs/x/best/"])
def test_missing_local_folder_says_so(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["info", name], capsys)
    assert code == 2 and f"model folder '{name}' does not exist" in err and "hub" in err


def test_data_check_ok_and_with_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from samlora.data.synthetic import write_coco_dataset

    root = write_coco_dataset(tmp_path / "coco", n_train=4, n_valid=2)
    code, out, _ = run(["data", "check", str(root)], capsys)
    assert code == 0 and "split train" in out and "classes: " in out and "0 error(s)" in out
    assert out.index("split train") < out.index("split valid")
    (root / "train" / "img_001.jpg").write_bytes(b"broken")
    code, out, _ = run(["data", "check", str(root)], capsys)
    assert code == 1 and "img_001.jpg" in out and "ERROR" in out


def test_adapters_info_and_merge(
    tiny_dirs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import torch

    from samlora.config import LoraSettings
    from samlora.lora.adapters import adapter_metadata, save_adapter
    from samlora.lora.plan import apply_lora
    from samlora.models.loading import load_model

    loaded = load_model(str(tiny_dirs["sam"]))
    settings = LoraSettings(rank=2, components=["vision_encoder"], target_modules=["all-linear"])
    model, _ = apply_lora(loaded.model, loaded.spec, settings)
    with torch.no_grad():
        for p in (p for p in model.parameters() if p.requires_grad):
            p.add_(0.1)
    folder = save_adapter(model, tmp_path / "adapter", adapter_metadata(loaded, settings))
    code, out, _ = run(["adapters", "info", str(folder)], capsys)
    assert code == 0 and '"family": "sam"' in out and '"rank": 2' in out
    code, out, _ = run(["adapters", "merge", str(folder), "--output", str(tmp_path / "merged")], capsys)
    assert code == 0 and (tmp_path / "merged" / "model.safetensors").is_file()
    merged = load_model(str(tmp_path / "merged"))
    assert not torch.equal(
        merged.model.vision_encoder.layers[0].attn.qkv.weight,
        model.get_base_model().vision_encoder.layers[0].attn.qkv.base_layer.weight,
    )


def test_info_model_flags_next_to_the_positional_model(
    tiny_dirs: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """The positional MODEL must not swallow the --model.* config section."""
    code, out, err = run(["info", str(tiny_dirs["sam"]), "--model.family", "sam"], capsys)
    assert code == 0 and "family:      sam" in out and "Traceback" not in err
    code, out, _ = run(["info", "--model.name", str(tiny_dirs["sam2"])], capsys)
    assert code == 0 and "family:      sam2" in out


def _adapter(tiny_dirs: dict[str, Path], folder: Path, family: str = "sam") -> Path:
    from samlora.config import LoraSettings
    from samlora.lora.adapters import adapter_metadata, save_adapter
    from samlora.lora.plan import apply_lora
    from samlora.models.loading import load_model

    loaded = load_model(str(tiny_dirs[family]))
    settings = LoraSettings(rank=2, components=["vision_encoder"], target_modules=["all-linear"])
    model, _ = apply_lora(loaded.model, loaded.spec, settings)
    return save_adapter(model, folder, adapter_metadata(loaded, settings))


def test_merge_never_replaces_a_folder_it_did_not_write(
    tiny_dirs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch
) -> None:
    folder = _adapter(tiny_dirs, tmp_path / "adapter")
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "keep.txt").write_text("x")
    code, _, err = run(["adapters", "merge", str(folder), "--output", str(existing), "--overwrite"], capsys)
    assert code == 2 and "not a model merged by samlora" in err and (existing / "keep.txt").is_file()
    merged = tmp_path / "merged"
    assert run(["adapters", "merge", str(folder), "--output", str(merged)], capsys)[0] == 0
    code, _, err = run(["adapters", "merge", str(folder), "--output", str(merged)], capsys)
    assert code == 2 and "--overwrite" in err
    assert run(["adapters", "merge", str(folder), "--output", str(merged), "--overwrite"], capsys)[0] == 0
    monkeypatch.chdir(existing)
    code, _, err = run(["adapters", "merge", str(folder), "--output", "."], capsys)
    assert code == 2 and "Traceback" not in err and (existing / "keep.txt").is_file()


def test_merge_onto_another_family_names_the_adapter_and_both_families(
    tiny_dirs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = _adapter(tiny_dirs, tmp_path / "adapter")
    args = [
        "adapters",
        "merge",
        str(folder),
        "--output",
        str(tmp_path / "o"),
        "--model",
        str(tiny_dirs["sam2"]),
    ]
    code, _, err = run(args, capsys)
    assert code == 2 and str(folder) in err and "family 'sam'" in err and "family 'sam2'" in err


def test_command_line_problems_are_reported_all_at_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(["config", "validate", "--lora.rank", "abc", "--train.lr", "xyz"], capsys)
    assert code == 2 and "2 problem(s)" in err and "'lora.rank'" in err and "'train.lr'" in err
    bad = tmp_path / "bad.yaml"
    bad.write_text("lora:\n  rank: -1\n  variant: qlora\ntrain:\n  batch_size: 0\n")
    code, _, err = run(["config", "validate", "--config", str(bad), "--train.epochs", "x"], capsys)
    assert code == 2 and "4 problem(s)" in err and str(bad) in err
    for key in ("'lora.rank'", "qlora", "'train.batch_size'", "'train.epochs'"):
        assert key in err, err


def test_list_flag_without_brackets_shows_the_syntax(
    tiny_dirs: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(["info", str(tiny_dirs["sam"]), "--lora.components", "vision_encoder"], capsys)
    assert code == 2 and "'[vision_encoder, mask_decoder]'" in err
