"""Config contract: YAML + overrides, every problem at once, nearest-key suggestions, presets."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from samlora.config import Config, config_from_dict, config_keys, load_config, save_config
from samlora.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]

REQUIRED_KEYS = [
    "model.name", "model.family", "lora.rank", "lora.alpha", "lora.dropout", "lora.variant",
    "lora.components", "lora.target_modules", "lora.train_fully", "data.root", "data.format",
    "train.epochs", "train.max_steps", "train.batch_size", "train.lr", "train.weight_decay",
    "train.grad_accum", "train.precision", "train.seed", "train.num_workers", "output.dir",
]  # fmt: skip


def test_required_keys_exist() -> None:
    keys = config_keys()
    assert [k for k in REQUIRED_KEYS if k not in keys] == []


def test_yaml_and_overrides(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("lora:\n  rank: 4\n  alpha: 1\ntrain:\n  lr: 0.001\n")
    cfg = load_config(path, {"lora": {"rank": 16}, "data": {"root": "/d"}})
    assert cfg.lora.rank == 16 and cfg.lora.alpha == 1.0 and cfg.train.lr == 0.001 and cfg.data.root == "/d"
    assert isinstance(cfg.lora.alpha, float)


def test_yaml_scientific_notation_is_a_number(tmp_path: Path) -> None:
    """PyYAML reads ``1e-4`` (no dot) as a string; it is a number in samlora configs."""
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  lr: 1e-4\n  weight_decay: 5E-2\n")
    cfg = load_config(path)
    assert cfg.train.lr == pytest.approx(1e-4) and cfg.train.weight_decay == pytest.approx(0.05)
    with pytest.raises(ConfigError, match=r"train\.lr.*a number"):
        config_from_dict({"train": {"lr": "fast"}})


def test_shipped_presets_load_by_name(tmp_path: Path, monkeypatch) -> None:
    """The presets ship inside the package: ``--config medical`` works after a plain pip install."""
    from samlora.config.io import PRESET_DIR, config_presets

    assert config_presets() == sorted(p.stem for p in (REPO / "configs").glob("*.yaml"))
    assert (REPO / "configs").resolve() == PRESET_DIR
    monkeypatch.chdir(tmp_path)
    assert load_config("medical").lora.alpha == 1.0 and load_config("minimal.yaml").lora.rank == 4
    with pytest.raises(ConfigError, match="preset name.*medical"):
        load_config("no-such-preset")


def test_typo_names_nearest_key(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("lora:\n  rnak: 8\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert "lora.rnak" in str(err.value) and "lora.rank" in str(err.value) and str(path) in str(err.value)


def test_every_problem_reported_at_once() -> None:
    with pytest.raises(ConfigError) as err:
        config_from_dict(
            {
                "lora": {"rnak": 8, "variant": "qlora", "dropout": 2.0},
                "train": {"lr": "fast", "batch_size": 0},
                "tarin": {},
            }
        )
    problems = err.value.problems
    text = str(err.value)
    assert "lora.rank" in text and "qlora" in text and "train.lr" in text and "'train'" in text
    assert len(problems) >= 4


def test_value_checks_after_types() -> None:
    with pytest.raises(ConfigError) as err:
        config_from_dict({"lora": {"rank": 0, "dropout": 1.5}, "train": {"batch_size": 0, "grad_accum": 0}})
    text = str(err.value)
    for key in ("lora.rank", "lora.dropout", "train.batch_size", "train.grad_accum"):
        assert key in text


def test_component_in_both_lists_is_an_error() -> None:
    with pytest.raises(ConfigError, match="both"):
        config_from_dict({"lora": {"components": ["mask_decoder"], "train_fully": ["mask_decoder"]}})


def test_bool_is_strict() -> None:
    with pytest.raises(ConfigError, match="true or false"):
        config_from_dict({"augment": {"enabled": "False"}})


def test_roundtrip_resolved_config(tmp_path: Path) -> None:
    cfg = config_from_dict({"lora": {"rank": 4}, "data": {"class_names": {1: "polyp"}}})
    save_config(cfg, tmp_path / "config.yaml")
    again = load_config(tmp_path / "config.yaml")
    assert again == cfg


def test_bad_yaml_names_line(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("lora:\n  rank: [4\n")
    with pytest.raises(ConfigError, match="line"):
        load_config(path)


@pytest.mark.parametrize("name", ["minimal", "balanced", "maximum", "medical", "sam3_light", "sam3_full"])
def test_presets_load(name: str) -> None:
    cfg = load_config(REPO / "configs" / f"{name}.yaml")
    assert isinstance(cfg, Config)


def test_preset_contents() -> None:
    minimal = load_config(REPO / "configs" / "minimal.yaml").lora
    assert (minimal.rank, minimal.components, sorted(minimal.target_modules)) == (
        4,
        ["vision_encoder"],
        ["q_proj", "v_proj"],
    )
    balanced = load_config(REPO / "configs" / "balanced.yaml").lora
    assert balanced.rank == 16 and set(balanced.components) == {"vision_encoder", "mask_decoder"}
    assert set(balanced.target_modules) == {"attention", "mlp"}
    maximum = load_config(REPO / "configs" / "maximum.yaml").lora
    assert maximum.rank == 32 and maximum.target_modules == ["all-linear"] and maximum.components == ["all"]
    medical = load_config(REPO / "configs" / "medical.yaml").lora
    assert (medical.rank, medical.alpha, medical.components, medical.target_modules, medical.train_fully) == (
        4, 1.0, ["vision_encoder"], ["all-linear"], ["mask_decoder"]
    )  # fmt: skip
    assert yaml.safe_load((REPO / "configs" / "medical.yaml").read_text())["lora"]["alpha"] == 1


def test_eval_clicks_is_the_interactive_protocols_budget() -> None:
    assert config_from_dict({"eval": {"prompt": "clicks", "clicks": 20}}).eval.clicks == 20
    for bad in (0, 21):
        with pytest.raises(ConfigError, match=r"'eval.clicks' must be in \[1, 20\]"):
            config_from_dict({"eval": {"clicks": bad}})
