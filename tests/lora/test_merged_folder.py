"""A merged folder is a complete transformers model: AutoModel + AutoProcessor load it and reproduce samlora's masks.

transformers' SAM 2 / SAM 3 image processors need torchvision, which does not import beside
this torch build; for those families the processor's documented steps (rescale, normalise
with the folder's mean/std) are applied to an image already at the input size, and the full
processor runs where torchvision imports.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import transformers
from PIL import Image

from samlora.lora.adapters import export_merged, load_adapter
from samlora.models.loading import load_model
from samlora.models.processor import PROCESSOR_CLASSES
from samlora.predict.predictor import Predictor

HAS_TORCHVISION = importlib.util.find_spec("torchvision") is not None
PIL_PROCESSOR = ("sam", "sam_hq")  # families whose processor has a PIL backend


def picture(height: int, width: int) -> np.ndarray:
    rng = np.random.default_rng(3)
    img = rng.integers(0, 255, size=(height, width, 3), dtype=np.uint8)
    img[height // 4 : height // 2, width // 4 : width // 2] = (230, 60, 40)
    return img


@pytest.fixture(scope="module")
def merged(tiny_adapters: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("merged")
    return {family: export_merged(folder, root / family) for family, folder in tiny_adapters.items()}


@pytest.mark.parametrize("family", ["sam", "sam_hq", "sam2", "sam3_tracker", "sam3"])
def test_folder_is_complete(family: str, merged: dict[str, Path]) -> None:
    folder = merged[family]
    names = {p.name for p in folder.iterdir()}
    assert {
        "config.json",
        "model.safetensors",
        "preprocessor_config.json",
        "samlora.json",
        "README.md",
    } <= names
    config = json.loads((folder / "preprocessor_config.json").read_text())
    processor, image_processor = PROCESSOR_CLASSES[family]
    assert config["processor_class"] == processor and config["image_processor_type"] == image_processor
    base = load_model(str(folder))
    assert config["image_mean"] == list(base.preprocessing.mean) and config["image_std"] == list(
        base.preprocessing.std
    )
    size = base.preprocessing.image_size
    assert config["size"] == (
        {"longest_edge": size} if family in PIL_PROCESSOR else {"height": size, "width": size}
    )
    card = (folder / "README.md").read_text()
    assert (
        card.startswith("---\nlibrary_name: transformers")
        and "| rank / alpha / dropout | 2 /" in card
        and "| dice | 0.5000 |" in card
    )
    assert str(base.spec.model_class) in card and "AutoProcessor.from_pretrained" in card
    assert "## Preprocessing" in card and str(folder.parent.parent) not in card  # no path of this machine
    model = transformers.AutoModel.from_pretrained(folder)
    assert type(model).__name__ == base.spec.model_class
    assert (
        type(getattr(transformers, base.spec.model_class).from_pretrained(folder)).__name__
        == base.spec.model_class
    )
    if family == "sam3":
        assert "tokenizer_config.json" in names and ("tokenizer.json" in names or "vocab.json" in names)
        assert transformers.AutoTokenizer.from_pretrained(folder)("crack")["input_ids"]


@pytest.mark.parametrize("family", PIL_PROCESSOR)
def test_auto_processor_and_model_reproduce_predictor(
    family: str, merged: dict[str, Path], tiny_dirs: dict[str, Path], tiny_adapters: dict[str, Path]
) -> None:
    folder = merged[family]
    processor = transformers.AutoProcessor.from_pretrained(folder)
    assert type(processor).__name__ == PROCESSOR_CLASSES[family][0]
    model = transformers.AutoModel.from_pretrained(folder).eval()
    img, box = picture(48, 64), [6.0, 5.0, 40.0, 30.0]  # longest side = the input size: padding, no resize
    inputs = processor(images=Image.fromarray(img), input_boxes=[[box]], return_tensors="pt")
    with torch.no_grad():
        out = model(**inputs, multimask_output=False)
    masks = processor.post_process_masks(
        out.pred_masks, inputs["original_sizes"], inputs["reshaped_input_sizes"]
    )
    theirs = masks[0][0, 0].numpy()

    predictor = Predictor(str(tiny_dirs[family]), adapters=[tiny_adapters[family]])
    ours = predictor.predict(image=img, boxes=[box]).masks[0]
    assert theirs.shape == ours.shape == (48, 64) and (theirs == ours).all()
    pixels = predictor.loaded.preprocessing.images([torch.from_numpy(img).permute(2, 0, 1)])
    assert torch.allclose(inputs["pixel_values"], pixels, atol=1e-5)


def _normalised(folder: Path, img: np.ndarray) -> torch.Tensor:
    """What the folder's image processor does to an image already at the input size (rescale, normalise)."""
    config = json.loads((folder / "preprocessor_config.json").read_text())
    mean, std = np.array(config["image_mean"]), np.array(config["image_std"])
    values = (img * config["rescale_factor"] - mean) / std
    return torch.from_numpy(values).permute(2, 0, 1)[None].float()


@pytest.mark.parametrize("family", ["sam2", "sam3_tracker"])
def test_model_from_folder_reproduces_predictor(
    family: str, merged: dict[str, Path], tiny_dirs: dict[str, Path], tiny_adapters: dict[str, Path]
) -> None:
    folder = merged[family]
    size = load_model(str(folder)).preprocessing.image_size
    img, box = picture(size, size), [6.0, 5.0, 40.0, 30.0]
    model = transformers.AutoModel.from_pretrained(folder).eval()
    if HAS_TORCHVISION:
        processor = transformers.AutoProcessor.from_pretrained(folder)
        inputs = dict(processor(images=Image.fromarray(img), input_boxes=[[box]], return_tensors="pt"))
        inputs.pop("original_sizes", None)
    else:
        inputs = {"pixel_values": _normalised(folder, img), "input_boxes": torch.tensor([[box]])}
    with torch.no_grad():
        low = model(**inputs, multimask_output=False).pred_masks[0, 0]
    theirs = torch.nn.functional.interpolate(low[None], size=(size, size), mode="bilinear")[0, 0] > 0
    ours = Predictor(str(tiny_dirs[family]), adapters=[tiny_adapters[family]]).predict(image=img, boxes=[box])
    assert (theirs.numpy() == ours.masks[0]).all()


def test_sam3_model_and_tokenizer_from_folder_match_the_adapter(
    merged: dict[str, Path], tiny_dirs: dict[str, Path], tiny_adapters: dict[str, Path]
) -> None:
    folder = merged["sam3"]
    model = transformers.AutoModel.from_pretrained(folder).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    length = model.config.text_config.max_position_embeddings
    text = tokenizer(["crack"], padding="max_length", max_length=length, return_tensors="pt")
    size = load_model(str(folder)).preprocessing.image_size
    pixels = _normalised(folder, picture(size, size))
    base = load_model(str(tiny_dirs["sam3"]))
    adapted = load_adapter(base, base.model, tiny_adapters["sam3"])
    with torch.no_grad():
        theirs = model(
            pixel_values=pixels, input_ids=text["input_ids"], attention_mask=text["attention_mask"]
        )
        ours = adapted(
            pixel_values=pixels, input_ids=text["input_ids"], attention_mask=text["attention_mask"]
        )
    assert torch.allclose(theirs.pred_masks, ours.pred_masks, atol=1e-5)
    assert torch.allclose(theirs.pred_logits, ours.pred_logits, atol=1e-5)
