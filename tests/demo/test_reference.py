"""The shipped reference model: loads as a preset, is small, segments its source domain; the pretraining script runs."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import pytest

from samlora.demo.domains import source_image
from samlora.demo.folders import write_mask_folder
from samlora.demo.pretrain import SHIPPED_FILES, evaluate_folder, main
from samlora.demo.reference import count_parameters, reference_config
from samlora.models.loading import load_model
from samlora.models.presets import REFERENCE_PRESET, preset_folder, preset_names

REFERENCE = preset_folder(REFERENCE_PRESET)


def test_reference_preset_ships_inside_the_package_within_20_mb() -> None:
    assert REFERENCE_PRESET in preset_names()
    for name in (*SHIPPED_FILES, "MODEL_CARD.md", "pretrain.json"):
        assert (REFERENCE / name).is_file(), name
    total = sum(p.stat().st_size for p in REFERENCE.iterdir())
    assert total <= 20 * 2**20


def test_reference_loads_like_a_hub_model_with_the_documented_architecture() -> None:
    loaded = load_model(REFERENCE_PRESET)
    assert loaded.spec.name == "sam"
    params = count_parameters(loaded.model)
    assert params < 5_000_000
    expected = reference_config()
    got = loaded.model.config
    assert got.vision_config.hidden_size == expected.vision_config.hidden_size
    assert got.vision_config.image_size == expected.vision_config.image_size
    card = (REFERENCE / "MODEL_CARD.md").read_text()
    record = json.loads((REFERENCE / "pretrain.json").read_text())
    assert record["parameters"] == params
    assert f"{record['test']['box']['dice_object']:.3f}" in card


def test_reference_segments_fresh_source_images_from_box_prompts(tmp_path: Path) -> None:
    # images the model never saw: a seed the pretraining data does not use
    write_mask_folder(
        tmp_path / "data" / "test",
        partial(source_image, size=256),
        16,
        seed=987_654,
        key=(0, 2),
        mask_mode="instance",
    )
    scores = evaluate_folder(REFERENCE, tmp_path / "data", "test", "box", tmp_path / "eval")
    # measured on these 16 images: 0.721 overall, 0.84 / 0.88 for objects of 1000-2999 / >= 3000 px
    # (0.762 on the 200-image test split of the model card; small and thin objects are the hard part)
    assert scores["objects"] >= 16
    assert scores["dice_object"] >= 0.65
    large = [row for row in scores["by_area"] if row["min"] >= 1000]
    assert all(row["objects"] > 0 and row["dice"] >= 0.78 for row in large), scores["by_area"]
    assert [row["objects"] for row in scores["by_area"]] and sum(
        r["objects"] for r in scores["by_area"]
    ) == scores["objects"]


def test_pretraining_script_writes_model_card_and_record(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out, work = tmp_path / "out", tmp_path / "work"
    argv = ["--out", str(out), "--work", str(work), "--steps", "2", "--train-images", "6"]
    argv += ["--valid-images", "2", "--test-images", "2", "--image-size", "96", "--batch-size", "2"]
    argv += ["--objects-per-image", "2", "--eval-every", "2", "--warmup-steps", "1", "--num-workers", "0"]
    assert main(argv) == 0
    assert "test Dice: box" in capsys.readouterr().out
    for name in (*SHIPPED_FILES, "MODEL_CARD.md", "pretrain.json"):
        assert (out / name).is_file(), name
    record = json.loads((out / "pretrain.json").read_text())
    assert record["recipe"]["steps"] == 2 and record["recipe"]["seed"] == 0
    assert set(record["test"]) == {"box", "center_point"}
    assert 0.0 <= record["test"]["box"]["dice_object"] <= 1.0
    card = (out / "MODEL_CARD.md").read_text()
    assert "--steps 2" in card and f"{record['parameters']:,}" in card
    assert load_model(str(out)).spec.name == "sam"
    # the data folder is reused, not rewritten, when the settings match
    marker = work / "data" / "source_domain.json"
    stamp = marker.stat().st_mtime_ns
    main([*argv, "--write-data-only"])
    assert marker.stat().st_mtime_ns == stamp
