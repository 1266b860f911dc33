"""Model families: load from local folders, detect the family, preprocess and map back exactly."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import transformers

from samlora.errors import ModelLoadError
from samlora.models.families import FAMILIES as SPECS
from samlora.models.loading import load_model
from samlora.models.promptable import decode, encode

FAMILIES = list(SPECS)
PROMPTABLE = [name for name, spec in SPECS.items() if spec.task == "promptable"]


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_loads_from_a_local_folder(tiny_dirs: dict[str, Path], family: str) -> None:
    loaded = load_model(str(tiny_dirs[family]))
    assert loaded.spec.name == family
    assert not any(p.requires_grad for p in loaded.model.parameters())
    assert sum(p.numel() for p in loaded.model.parameters()) < 500_000
    assert (loaded.tokenizer is not None) == (family == "sam3")


@pytest.mark.parametrize("family", PROMPTABLE)
def test_promptable_forward_shapes(tiny_dirs: dict[str, Path], family: str) -> None:
    loaded = load_model(str(tiny_dirs[family]))
    pre = loaded.preprocessing
    images = [
        torch.randint(0, 256, (3, 37, 61), dtype=torch.uint8),
        torch.randint(0, 256, (3, 50, 20), dtype=torch.uint8),
    ]
    emb = encode(loaded.model, loaded.spec, pre.images(images))
    out = decode(
        loaded.model,
        loaded.spec,
        emb,
        torch.tensor([0, 1, 1]),
        boxes=torch.tensor([[1.0, 1, 20, 20]] * 3),
        multimask=True,
    )
    assert out.logits.shape == (3, 3, pre.low_res_size, pre.low_res_size)
    assert out.iou.shape == (3, 3)


def test_family_mismatch_is_refused(tiny_dirs: dict[str, Path]) -> None:
    with pytest.raises(ModelLoadError, match="model.family is 'sam2'.*model_type 'sam'"):
        load_model(str(tiny_dirs["sam"]), family="sam2")


def test_uncached_hub_id_offline_gives_clear_error() -> None:
    with pytest.raises(ModelLoadError) as err:
        load_model("facebook/sam-vit-base-not-cached")
    text = str(err.value)
    assert "local folder" in text and "facebook/sam-vit-base-not-cached" in text


def test_folder_without_config(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="no config.json"):
        load_model(str(tmp_path))


def test_preset_goes_through_from_pretrained() -> None:
    loaded = load_model("tiny-sam")
    assert loaded.spec.name == "sam" and loaded.name == "tiny-sam"


@pytest.mark.parametrize("resize", ["longest_side", "square"])
def test_preprocess_roundtrip_non_square(resize: str) -> None:
    """A mask mapped into the input frame and back lands on the same original pixels."""
    from samlora.models.preprocess import Preprocessing

    pre = Preprocessing(image_size=64, resize=resize, mean=(0.5,) * 3, std=(0.5,) * 3, low_res_size=16)
    height, width = 90, 150
    geom = pre.geometry(height, width)
    mask = torch.zeros(1, height, width, dtype=torch.bool)
    mask[0, 20:70, 30:120] = True
    framed = pre.masks(mask, geom)  # 1 x 64 x 64 in [0, 1]
    logits = torch.logit(framed.clamp(1e-4, 1 - 1e-4))
    back = pre.logits_to_original(logits, geom) > 0
    assert back.shape == (1, height, width)
    agreement = (back == mask).float().mean().item()
    assert agreement > 0.999  # a one-pixel shift of this box would disagree on about 1% of pixels
    ys, xs = torch.nonzero(back[0], as_tuple=True)
    assert (ys.min(), ys.max(), xs.min(), xs.max()) == (20, 69, 30, 119)  # same extent, no shift
    # coordinates round trip exactly
    box = torch.tensor([[30.0, 20.0, 119.0, 69.0]])
    assert torch.allclose(pre.coords_back(pre.coords(box, geom), geom), box)
    if resize == "longest_side":
        assert (geom.resized_h, geom.resized_w) == (38, 64)
    else:
        assert (geom.resized_h, geom.resized_w) == (64, 64)


def test_batched_images_equal_one_by_one() -> None:
    """Same-size images are resized in one batched call; the result equals per-image preprocessing."""
    from samlora.models.preprocess import Preprocessing

    pre = Preprocessing(
        image_size=64, resize="longest_side", mean=(0.4,) * 3, std=(0.2,) * 3, low_res_size=16
    )
    gen = torch.Generator().manual_seed(0)
    sizes = [(90, 150), (40, 30), (90, 150), (64, 64), (90, 150)]
    images = [torch.randint(0, 256, (3, h, w), dtype=torch.uint8, generator=gen) for h, w in sizes]
    batched = pre.images(images)
    assert torch.equal(batched, torch.cat([pre.images([image]) for image in images]))


def test_images_are_padded_with_zero_after_normalisation() -> None:
    from samlora.models.preprocess import Preprocessing

    pre = Preprocessing(
        image_size=32, resize="longest_side", mean=(0.5,) * 3, std=(0.25,) * 3, low_res_size=8
    )
    image = torch.full((3, 16, 32), 255, dtype=torch.uint8)
    pixels = pre.images([image])
    assert pixels.shape == (1, 3, 32, 32)
    assert torch.allclose(pixels[0, :, :16], torch.full((3, 16, 32), 2.0))
    assert torch.all(pixels[0, :, 16:] == 0)


def test_a_model_folder_replaced_while_it_loads_gives_one_version(
    tiny_dirs: dict[str, Path], tmp_path: Path, monkeypatch
) -> None:
    """A full fine-tune's RUN/last is replaced by the trainer while predict loads it: config and
    weights come from the same version (the load starts again if its version is removed)."""
    import transformers.modeling_utils as modeling_utils

    from samlora.io.atomic import replacing_dir

    folder = tmp_path / "run" / "last"
    base = transformers.SamModel.from_pretrained(tiny_dirs["sam"])

    def save_version(tag: str, scale: float) -> None:
        model = transformers.SamModel.from_pretrained(tiny_dirs["sam"])
        with torch.no_grad():
            for param in model.parameters():
                param.mul_(scale)
        model.config.version_tag = tag
        with replacing_dir(folder) as tmp:
            model.save_pretrained(tmp)

    save_version("A", 1.0)
    real, landed = modeling_utils.safe_open, []

    def opening(path, *args, **kwargs):
        if not landed:  # the trainer lands its next version after config.json, before the weights
            landed.append(True)
            save_version("B", 2.0)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(modeling_utils, "safe_open", opening)
    loaded = load_model(str(folder))
    assert landed
    weight = loaded.model.mask_decoder.iou_prediction_head.proj_out.weight
    reference = base.mask_decoder.iou_prediction_head.proj_out.weight
    tag = "B" if torch.equal(weight, 2 * reference) else "A" if torch.equal(weight, reference) else "mixed"
    assert loaded.model.config.version_tag == tag
    assert loaded.model.name_or_path == str(folder)  # not the pinned path it was read through
