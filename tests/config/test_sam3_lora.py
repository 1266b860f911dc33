"""A user of the SAM3-LoRA tool brings their config: samlora reads it as the samlora config it means.

``QUICK_TEST`` and ``PRODUCTION`` are the seed README's examples verbatim ("Example 1: Quick Test",
"Example 2: Production Training"). The README describes the tool's ``light_lora_config.yaml`` and
``full_lora_config.yaml`` without printing them; ``LIGHT`` and ``FULL`` are written from that
description (light: rank 16, vision and geometry encoders skipped, batch 2; full: rank 32, batch 2 x 8
accumulated steps, 100 epochs, eval_steps 100, 2 workers, lr 5e-5, data in /workspace/data2).
The tool always trains facebook/sam3 and the examples' data folders do not exist here, so the tests
point ``--model.name`` at a tiny SAM 3 and ``--data.root`` at a tiny COCO export, and change nothing else.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from samlora.config import config_from_dict, load_config
from samlora.config.sam3_lora import from_sam3_lora
from samlora.data.synthetic import write_coco_dataset
from samlora.errors import ConfigError

from ..cli.test_cli import run

QUICK_TEST = """\
lora:
  rank: 4
  alpha: 8
  dropout: 0.1
  target_modules: ["q_proj", "v_proj"]
  apply_to_vision_encoder: true
  apply_to_mask_decoder: false
training:
  batch_size: 1
  num_epochs: 5
  learning_rate: 1e-4
  weight_decay: 0.01
output:
  output_dir: "outputs/quick_test"
"""
PRODUCTION = """\
lora:
  rank: 32
  alpha: 64
  dropout: 0.1
  target_modules: ["q_proj", "k_proj", "v_proj", "fc1", "fc2"]
  apply_to_vision_encoder: true
  apply_to_mask_decoder: true
  apply_to_detr_encoder: true
  apply_to_detr_decoder: true
training:
  batch_size: 2
  num_epochs: 50
  learning_rate: 3e-5
  weight_decay: 0.01
output:
  output_dir: "outputs/production"
"""
LIGHT = """\
lora:
  rank: 16
  alpha: 32
  dropout: 0.1
  target_modules: ["q_proj", "k_proj", "v_proj", "fc1", "fc2"]
  apply_to_vision_encoder: false
  apply_to_text_encoder: true
  apply_to_geometry_encoder: false
  apply_to_detr_encoder: true
  apply_to_detr_decoder: true
  apply_to_mask_decoder: true
training:
  data_dir: "/workspace/data2"
  batch_size: 2
  num_epochs: 100
  learning_rate: 5e-5
  weight_decay: 0.01
  gradient_accumulation_steps: 8
  num_workers: 2
  eval_steps: 100
output:
  output_dir: "outputs/sam3_lora_light"
"""
FULL = (
    LIGHT.replace("rank: 16", "rank: 32")
    .replace("alpha: 32", "alpha: 64")
    .replace("apply_to_vision_encoder: false", "apply_to_vision_encoder: true")
    .replace("apply_to_geometry_encoder: false", "apply_to_geometry_encoder: true")
    .replace("_light", "_full")
)
EXAMPLES = {"quick_test": QUICK_TEST, "production": PRODUCTION, "light": LIGHT, "full": FULL}


@pytest.fixture(scope="module")
def coco(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One training image and no validation split (optional in the tool too): five quick epochs."""
    return write_coco_dataset(tmp_path_factory.mktemp("coco"), n_train=1, n_valid=0, size=32)


def test_migrate_writes_the_samlora_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old = tmp_path / "full_lora_config.yaml"
    old.write_text(FULL)
    code, out, _ = run(["config", "migrate", str(old)], capsys)
    new = tmp_path / "full_lora_config.samlora.yaml"
    assert code == 0 and f"written to {new}" in out
    text = new.read_text()
    assert "apply_to_geometry_encoder: true is not carried over" in text  # said, not silently dropped
    assert yaml.safe_load(text) == {
        "model": {"name": "facebook/sam3"},
        "lora": {
            "rank": 32, "alpha": 64, "dropout": 0.1,
            "components": ["vision_encoder", "text_encoder", "detr_encoder", "detr_decoder", "mask_decoder"],
            "target_modules": ["q_proj", "k_proj", "v_proj", "fc1", "fc2"],
        },
        "data": {"root": "/workspace/data2"},
        "train": {
            "batch_size": 2, "epochs": 100, "lr": 5e-5, "weight_decay": 0.01, "grad_accum": 8, "num_workers": 2,
            "eval_every": 100,
        },
        "output": {"dir": "outputs/sam3_lora_full"},
    }  # fmt: skip
    assert load_config(new) == load_config(old)  # the written file means what the tool's file means
    code, _, err = run(["config", "migrate", str(old)], capsys)
    assert code == 2 and "--overwrite" in err
    code, _, err = run(["config", "migrate", str(new)], capsys)
    assert code == 2 and "not a SAM3-LoRA config" in err


@pytest.mark.parametrize("name", list(EXAMPLES))
def test_every_example_validates_against_a_tiny_sam3(
    name: str, coco: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Components and targets are checked against the model's architecture: each example would train."""
    monkeypatch.chdir(tmp_path)
    path = tmp_path / f"{name}.yaml"
    path.write_text(EXAMPLES[name])
    code, out, err = run(
        ["config", "validate", "--config", str(path), "--model.name", "tiny-sam3", "--data.root", str(coco)],
        capsys,
    )
    assert code == 0, err
    assert "is a SAM3-LoRA config" in out and "components:" in out and f"{path}: valid" in out


@pytest.fixture(scope="module")
def coco16(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Sixteen training images: one optimiser step of the light/full examples (batch 2 x 8 accumulation)."""
    return write_coco_dataset(tmp_path_factory.mktemp("coco16"), n_train=16, n_valid=0, size=32)


@pytest.mark.parametrize("name", ["production", "light", "full"])
def test_every_other_example_trains_a_tiny_sam3_as_written(
    name: str,
    coco16: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The file is not edited: the command line names the tiny model and data and stops after one step."""
    coco = coco16
    monkeypatch.chdir(tmp_path)
    path = tmp_path / f"{name}.yaml"
    path.write_text(EXAMPLES[name])
    code, out, err = run(
        ["train", "--config", str(path), "--model.name", "tiny-sam3", "--data.root", str(coco),
         "--train.max_steps", "1"],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    saved = yaml.safe_load(next(tmp_path.glob("outputs/*/config.yaml")).read_text())
    expected = yaml.safe_load(EXAMPLES[name])["lora"]
    assert saved["lora"]["rank"] == expected["rank"]  # the example's own LoRA settings were trained
    assert next(tmp_path.glob("outputs/*/best/adapter_model.safetensors")).is_file()


def test_train_with_the_quick_test_example(
    coco: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`samlora train --config quick_test.yaml` prints the samlora config it reads and trains (5 epochs)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "quick_test.yaml").write_text(QUICK_TEST)
    code, out, err = run(
        ["train", "--config", "quick_test.yaml", "--model.name", "tiny-sam3", "--data.root", str(coco)],
        capsys,
    )
    assert code == 0, err
    assert "quick_test.yaml is a SAM3-LoRA config" in out
    assert "components:\n  - vision_encoder\n" in out and "epochs: 5" in out
    run_dir = tmp_path / "outputs" / "quick_test"
    assert (run_dir / "best" / "adapter_model.safetensors").is_file()
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert saved["lora"]["components"] == ["vision_encoder"] and saved["lora"]["rank"] == 4
    assert (
        saved["train"]["epochs"] == 5 and saved["train"]["lr"] == 1e-4 and saved["train"]["batch_size"] == 1
    )


@pytest.mark.parametrize(
    ("flag", "suggestion"),
    [
        ("--lora.apply_to_detr_encoder", "lora.components: [..., detr_encoder]"),
        ("--lora.apply_to_vision_encoder", "lora.components: [..., vision_encoder]"),
        ("--training.data_dir", "data.root"),
        ("--train.num_epochs", "train.epochs"),
        ("--training.num_epochs", "train.epochs"),
        ("--training.learning_rate", "train.lr"),
        ("--training.gradient_accumulation_steps", "train.grad_accum"),
        ("--training.batch_size", "train.batch_size"),
        ("--output.output_dir", "output.dir"),
    ],
)
def test_tool_flags_get_the_right_suggestion(
    flag: str, suggestion: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(["config", "validate", flag, "1"], capsys)
    assert code == 2 and f"did you mean '{suggestion}'" in err, err


@pytest.mark.parametrize(
    ("section", "key", "suggestion"),
    [
        ("data", "data_dir", "data.root"),
        ("train", "num_epochs", "train.epochs"),
        ("lora", "apply_to_text_encoder", "lora.components: [..., text_encoder]"),
    ],
)
def test_tool_keys_in_a_samlora_dict_get_the_right_suggestion(
    section: str, key: str, suggestion: str
) -> None:
    with pytest.raises(
        ConfigError, match=f"did you mean '{suggestion}'".replace("[", r"\[").replace(".", r"\.")
    ):
        config_from_dict({section: {key: 1}})


def test_unknown_tool_keys_are_reported_not_ignored(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(QUICK_TEST.replace("  weight_decay: 0.01\n", "  weight_decay: 0.01\n  save_every_n: 3\n"))
    code, out, err = run(["config", "validate", "--config", str(path)], capsys)
    assert code == 2 and "  save_every_n: 3" in out and "unknown key 'train.save_every_n'" in err


def test_readme_mapping_table_is_what_samlora_does() -> None:
    """Each one-key row of README's "Coming from SAM3-LoRA" table names the key samlora maps it to."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("### Coming from SAM3-LoRA", 1)[1].split("\n### ", 1)[0]
    rows = re.findall(r"^\| `(training\.\w+|output\.\w+)` \| `([\w.]+)` \|$", section, flags=re.M)
    assert len(rows) >= 9
    for tool_key, samlora_key in rows:
        section_name, key = tool_key.split(".")
        mapped, _ = from_sam3_lora({section_name: {key: 1}})
        assert samlora_key.split(".")[1] in mapped[samlora_key.split(".")[0]], (tool_key, mapped)
