"""Shared fixtures: offline hub, a private cache, tiny models of every family saved to disk."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402
import transformers  # noqa: E402

transformers.logging.disable_progress_bar()
transformers.logging.set_verbosity_error()
# one thread per pytest-xdist worker (the workers share the machine's cores), else at most two
torch.set_num_threads(1 if os.environ.get("PYTEST_XDIST_WORKER") else min(2, torch.get_num_threads()))

from samlora.models.families import FAMILY_NAMES  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    os.environ["SAMLORA_CACHE"] = str(tmp_path_factory.mktemp("samlora-cache"))


@pytest.fixture(scope="session")
def tiny_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """family -> a folder written by ``save_pretrained`` holding a tiny random model."""
    from samlora.models.tiny import save_tiny_model

    root = tmp_path_factory.mktemp("tiny-models")
    return {family: save_tiny_model(family, root / family) for family in FAMILY_NAMES}


@pytest.fixture()
def image() -> np.ndarray:
    """A ``45 x 70 x 3`` uint8 photo (noise with a red rectangle): non-square, for prediction tests."""
    rng = np.random.default_rng(0)
    picture = rng.integers(0, 255, size=(45, 70, 3), dtype=np.uint8)
    picture[10:30, 20:50] = (230, 60, 40)
    return picture


@pytest.fixture(scope="session")
def tiny_adapters(tiny_dirs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """family -> a saved adapter (LoRA in the vision encoder, mask decoder changed, as after training)."""
    from samlora.config import LoraSettings
    from samlora.lora.adapters import adapter_metadata, save_adapter
    from samlora.lora.plan import apply_lora
    from samlora.models.loading import load_model

    settings = LoraSettings(
        rank=2, components=["vision_encoder"], target_modules=["all-linear"], train_fully=["mask_decoder"]
    )
    root = tmp_path_factory.mktemp("tiny-adapters")
    out = {}
    for family, folder in tiny_dirs.items():
        loaded = load_model(str(folder))
        model, _ = apply_lora(loaded.model, loaded.spec, settings)
        gen = torch.Generator().manual_seed(7)
        with torch.no_grad():
            for param in model.parameters():
                if param.requires_grad:
                    param.add_(0.05 * torch.randn(param.shape, generator=gen))
        meta = adapter_metadata(loaded, settings, class_names={1: "polyp"}, metrics={"dice": 0.5}, step=3)
        out[family] = save_adapter(model.eval(), root / family, meta)
    return out
