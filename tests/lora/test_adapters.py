"""Adapters: PEFT format, round trip, plain PEFT loading, swapping, merging, export and refusals."""

from __future__ import annotations

import json
from pathlib import Path

import peft
import pytest
import torch

from samlora.config import LoraSettings
from samlora.errors import AdapterError
from samlora.lora.adapters import (
    adapter_metadata,
    export_merged,
    load_adapter,
    merge_to_base,
    read_adapter,
    save_adapter,
    use_adapter,
)
from samlora.lora.plan import apply_lora
from samlora.models.loading import LoadedModel, load_model
from samlora.models.promptable import decode, encode

SETTINGS = LoraSettings(
    rank=2, components=["vision_encoder"], target_modules=["all-linear"], train_fully=["mask_decoder"]
)


def outputs(model: torch.nn.Module, loaded: LoadedModel) -> torch.Tensor:
    images = [torch.arange(3 * 40 * 56, dtype=torch.int64).reshape(3, 40, 56).remainder(251).to(torch.uint8)]
    pixels = loaded.preprocessing.images(images)
    with torch.no_grad():
        emb = encode(model, loaded.spec, pixels)
        return decode(
            model,
            loaded.spec,
            emb,
            torch.tensor([0, 0]),
            boxes=torch.tensor([[1.0, 2, 30, 33], [5, 5, 20, 20]]),
        ).logits


def trained_adapter(loaded: LoadedModel, seed: int, name: str = "default") -> peft.PeftModel:
    """An adapter with non-zero B and a changed mask decoder, as after training."""
    model, _ = apply_lora(loaded.model, loaded.spec, SETTINGS, adapter_name=name)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if p.requires_grad and name in n.split("."):
                p.add_(0.05 * torch.randn(p.shape, generator=gen))
    return model


@pytest.fixture()
def saved(tiny_dirs: dict[str, Path], tmp_path: Path) -> tuple[Path, torch.Tensor]:
    loaded = load_model(str(tiny_dirs["sam"]))
    model = trained_adapter(loaded, seed=1)
    model.eval()
    expected = outputs(model, loaded)
    folder = save_adapter(
        model, tmp_path / "adapter", adapter_metadata(loaded, SETTINGS, class_names={1: "polyp"}, step=3)
    )
    return folder, expected


def test_folder_is_peft_format_and_small(
    saved: tuple[Path, torch.Tensor], tiny_dirs: dict[str, Path]
) -> None:
    folder, _ = saved
    assert {"adapter_config.json", "adapter_model.safetensors", "samlora.json"} <= {
        p.name for p in folder.iterdir()
    }
    meta = json.loads((folder / "samlora.json").read_text())
    assert meta["family"] == "sam" and meta["task"] == "promptable" and meta["lora"]["rank"] == 2
    assert meta["class_names"] == {"1": "polyp"} and meta["image_size"] == 64 and meta["base_fingerprint"]
    config = json.loads((folder / "adapter_config.json").read_text())
    assert config["r"] == 2 and config["modules_to_save"] == ["mask_decoder"]
    from safetensors import safe_open

    with safe_open(str(folder / "adapter_model.safetensors"), "pt") as f:
        keys = list(f.keys())
    assert all("lora_" in k or "mask_decoder" in k for k in keys)
    assert not any("vision_encoder" in k and "lora_" not in k for k in keys)


def test_roundtrip_into_fresh_base(saved: tuple[Path, torch.Tensor], tiny_dirs: dict[str, Path]) -> None:
    folder, expected = saved
    loaded = load_model(str(tiny_dirs["sam"]))
    model = load_adapter(loaded, loaded.model, folder)
    assert torch.allclose(outputs(model, loaded), expected, atol=1e-6)


def test_plain_peft_from_pretrained(saved: tuple[Path, torch.Tensor], tiny_dirs: dict[str, Path]) -> None:
    folder, expected = saved
    loaded = load_model(str(tiny_dirs["sam"]))
    model = peft.PeftModel.from_pretrained(loaded.model, str(folder))
    assert torch.allclose(outputs(model, loaded), expected, atol=1e-6)


def test_swap_adapters_without_reloading_base(tiny_dirs: dict[str, Path], tmp_path: Path) -> None:
    loaded = load_model(str(tiny_dirs["sam"]))
    base_out = outputs(loaded.model, loaded)
    folders, expected = [], []
    for seed in (1, 2):
        fresh = load_model(str(tiny_dirs["sam"]))
        model = trained_adapter(fresh, seed)
        model.eval()
        expected.append(outputs(model, fresh))
        folders.append(save_adapter(model, tmp_path / f"a{seed}", adapter_metadata(fresh, SETTINGS)))
    model = load_adapter(loaded, loaded.model, folders[0], "one")
    model = load_adapter(loaded, model, folders[1], "two")
    base_weight = model.get_base_model().vision_encoder.layers[0].attn.qkv.base_layer.weight
    use_adapter(model, "one")
    assert torch.allclose(outputs(model, loaded), expected[0], atol=1e-6)
    use_adapter(model, "two")
    assert torch.allclose(outputs(model, loaded), expected[1], atol=1e-6)
    assert model.get_base_model().vision_encoder.layers[0].attn.qkv.base_layer.weight is base_weight
    with model.disable_adapter():
        assert torch.allclose(outputs(model, loaded), base_out, atol=1e-6)
    with pytest.raises(AdapterError, match="no adapter named 'three'"):
        use_adapter(model, "three")


def test_merge_equals_unmerged(
    saved: tuple[Path, torch.Tensor], tiny_dirs: dict[str, Path], tmp_path: Path
) -> None:
    folder, expected = saved
    loaded = load_model(str(tiny_dirs["sam"]))
    merged = merge_to_base(load_adapter(loaded, loaded.model, folder))
    assert not isinstance(merged, peft.PeftModel)
    assert torch.allclose(outputs(merged, loaded), expected, atol=1e-5)
    out = export_merged(folder, tmp_path / "merged", model_name=str(tiny_dirs["sam"]))
    exported = load_model(str(out))
    assert torch.allclose(outputs(exported.model, exported), expected, atol=1e-5)


def test_other_family_refused(saved: tuple[Path, torch.Tensor], tiny_dirs: dict[str, Path]) -> None:
    folder, _ = saved
    loaded = load_model(str(tiny_dirs["sam2"]))
    with pytest.raises(AdapterError, match="family 'sam'.*family 'sam2'"):
        load_adapter(loaded, loaded.model, folder)


def test_other_base_weights_refused(saved: tuple[Path, torch.Tensor], tmp_path: Path) -> None:
    from samlora.models.tiny import save_tiny_model

    folder, _ = saved
    other = load_model(str(save_tiny_model("sam", tmp_path / "other", seed=7)))
    with pytest.raises(AdapterError, match="different weights"):
        load_adapter(other, other.model, folder)


def test_shape_mismatch_refused_and_base_left_intact(
    saved: tuple[Path, torch.Tensor], tiny_dirs: dict[str, Path]
) -> None:
    folder, _ = saved
    meta = json.loads((folder / "samlora.json").read_text())
    meta.pop("base_fingerprint")
    meta["family"] = "sam_hq"
    (folder / "samlora.json").write_text(json.dumps(meta))
    loaded = load_model(str(tiny_dirs["sam_hq"]))
    before = outputs(loaded.model, loaded)
    with pytest.raises(AdapterError, match="does not fit"):
        load_adapter(loaded, loaded.model, folder)
    assert torch.allclose(outputs(loaded.model, loaded), before)
    assert not any("lora_" in n for n, _ in loaded.model.named_parameters())


def test_pickled_weights_refused(tmp_path: Path, tiny_dirs: dict[str, Path]) -> None:
    folder = tmp_path / "pickled"
    folder.mkdir()
    (folder / "adapter_config.json").write_text("{}")
    (folder / "adapter_model.bin").write_bytes(b"not loaded")
    loaded = load_model(str(tiny_dirs["sam"]))
    with pytest.raises(AdapterError, match="refuses to unpickle"):
        load_adapter(loaded, loaded.model, folder)


def test_missing_folder(tmp_path: Path, tiny_dirs: dict[str, Path]) -> None:
    loaded = load_model(str(tiny_dirs["sam"]))
    with pytest.raises(AdapterError, match="does not exist"):
        load_adapter(loaded, loaded.model, tmp_path / "nope")


def test_save_is_atomic_and_replaces(saved: tuple[Path, torch.Tensor], tiny_dirs: dict[str, Path]) -> None:
    folder, _ = saved
    loaded = load_model(str(tiny_dirs["sam"]))
    model = trained_adapter(loaded, seed=5)
    save_adapter(model, folder, adapter_metadata(loaded, SETTINGS, step=9))
    assert json.loads((folder / "samlora.json").read_text())["step"] == 9
    assert [p.name for p in folder.parent.iterdir() if p.name.startswith(".")] == []


def test_a_reader_of_a_cut_short_replacement_reads_it_and_changes_nothing(
    saved: tuple[Path, torch.Tensor], tiny_dirs: dict[str, Path], tmp_path: Path
) -> None:
    """A kill after the old folder was moved aside but before the new one came in leaves no
    ``best/``; a reader reads the complete copy beside it and changes nothing (the folder may
    belong to a live writer); the writer's next save puts things right."""
    import shutil

    folder, _ = saved
    copy = tmp_path / "run" / "best"
    shutil.copytree(folder, copy)
    step = json.loads((copy / "samlora.json").read_text()).get("step")
    copy.rename(copy.with_name(".best.old-deadbeef"))  # the state a kill leaves
    before = sorted(p.name for p in copy.parent.iterdir())
    assert read_adapter(copy).get("step") == step
    loaded = load_model(str(tiny_dirs["sam"]))
    load_adapter(loaded, loaded.model, copy)
    assert sorted(p.name for p in copy.parent.iterdir()) == before == [".best.old-deadbeef"]
    fresh = load_model(str(tiny_dirs["sam"]))
    save_adapter(trained_adapter(fresh, seed=5), copy, adapter_metadata(fresh, SETTINGS, step=11))
    assert [p.name for p in copy.parent.iterdir()] == ["best"]
    assert read_adapter(copy)["step"] == 11
