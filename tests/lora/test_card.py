"""Model cards: every saved adapter folder has a filled README.md in the hub's format, naming no local path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from samlora.config import config_from_dict, read_yaml
from samlora.data.synthetic import write_mask_dataset
from samlora.lora.card import model_card, public_model_name
from samlora.training.trainer import train


def front_matter(card: str) -> dict:
    assert card.startswith("---\n")
    return yaml.safe_load(card.split("---\n")[1])


def test_public_model_name(tmp_path: Path) -> None:
    assert public_model_name("facebook/sam-vit-base") == ("facebook/sam-vit-base", True)
    assert public_model_name("samlora-reference") == ("samlora-reference", False)
    cached = tmp_path / "hub" / "models--facebook--sam2.1-hiera-tiny" / "snapshots" / "abc123"
    cached.mkdir(parents=True)
    assert public_model_name(str(cached)) == ("facebook/sam2.1-hiera-tiny", True)
    local = tmp_path / "my-sam"
    local.mkdir()
    assert public_model_name(str(local)) == ("my-sam", False)
    assert public_model_name("./models/my-sam") == ("my-sam", False)


@pytest.fixture(scope="module")
def run(tiny_dirs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = write_mask_dataset(
        tmp_path_factory.mktemp("card") / "polyps", n_train=4, n_valid=2, n_test=0, seed=2
    )
    cfg = config_from_dict(
        {
            "model": {"name": str(tiny_dirs["sam"])},
            "lora": {"rank": 4, "alpha": 2, "components": ["vision_encoder"], "target_modules": ["qkv"], "train_fully": ["mask_decoder"]},
            "data": {"root": str(data)},
            "train": {"max_steps": 2, "batch_size": 2, "num_workers": 0, "seed": 7, "trackers": ["none"], "warmup_steps": 0},
            "eval": {"prompt": "center_point"},
            "output": {"dir": str(tmp_path_factory.mktemp("card-run") / "run")},
        }
    )  # fmt: skip
    return train(cfg).run_dir


def test_saved_adapter_has_a_filled_card_without_local_paths(run: Path, tiny_dirs: dict[str, Path]) -> None:
    for name in ("best", "last"):
        card = (run / name / "README.md").read_text()
        meta = json.loads((run / name / "samlora.json").read_text())
        assert "More Information Needed" not in card  # not PEFT's empty template
        for local in (str(tiny_dirs["sam"]), str(run), str(run.parent.parent), "/tmp/"):
            assert local not in card, local
        head = front_matter(card)
        assert head["library_name"] == "peft" and "base_model" not in head  # a local base: no hub id to name
        assert {"samlora", "sam", "lora", "peft"} <= set(head["tags"])
        assert "`sam`" in card and "family `sam`, task `promptable`" in card
        assert "| rank / alpha / dropout | 4 / 2.0 / 0.0 |" in card and "mask_decoder" in card
        params = meta["training"]["parameters"]
        assert params["trainable"] > 0 and f"{params['trainable']:,} (" in card
        assert "`polyps` (auto)" in card and "| training split `train` | 4 images |" in card
        assert "| validation split `valid` | 2 images |" in card
        assert "2 steps" in card and "/ 7 |" in card  # length and seed
        assert f"{meta['metrics']['dice']:.4f}" in card and "prompt `center_point` (`eval.prompt`)" in card
        assert (
            "peft.PeftModel.from_pretrained(base" in card
            and 'Predictor(adapters="path/to/this/folder")' in card
        )
        assert "samlora train --config config.yaml --data.root PATH/TO/polyps" in card
        block = card.split("```yaml\n")[1].split("```")[0]
        replayed = yaml.safe_load(block)
        resolved = read_yaml(run / "config.yaml")
        for section in ("lora", "train", "prompts", "loss", "augment", "eval"):
            assert replayed[section] == resolved[section], section  # the block reproduces the run
        assert (
            replayed["data"]["root"] == "<polyps>"
            and replayed["model"]["name"] == Path(tiny_dirs["sam"]).name
        )
        config_from_dict(replayed)  # a valid config as it stands


def test_hub_base_is_named_in_front_matter() -> None:
    meta = {
        "base_model": "facebook/sam-vit-base", "family": "sam", "task": "promptable", "image_size": 1024,
        "resize": "longest_side", "lora": {"rank": 8, "alpha": 8, "dropout": 0.0, "components": ["vision_encoder"],
        "target_modules": ["qkv"], "train_fully": []}, "class_names": {}, "metrics": {}, "step": 10,
    }  # fmt: skip
    card = model_card(meta)
    assert front_matter(card)["base_model"] == "facebook/sam-vit-base"
    assert 'transformers.SamModel.from_pretrained("facebook/sam-vit-base")' in card
    assert "No validation split" in card
    merged = model_card(meta, kind="merged")
    assert front_matter(merged)["library_name"] == "transformers" and "PeftModel" not in merged
