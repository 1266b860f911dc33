"""Exports shared by the export tests: each promptable family's tiny adapter, exported once."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from samlora.export.graphs import PROMPTABLE


@pytest.fixture(scope="session")
def exports(tiny_adapters: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """family -> ONNX export folder of its tiny adapter (merged), written through the CLI;
    what the command printed is in ``<family>.txt`` beside it."""
    from samlora.cli import main

    root = tmp_path_factory.mktemp("onnx")
    out = {}
    for family in PROMPTABLE:
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            assert main(["export", "onnx", str(tiny_adapters[family]), "--output", str(root / family)]) == 0
        (root / f"{family}.txt").write_text(printed.getvalue())
        out[family] = root / family
    return out


@pytest.fixture(scope="session")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of three photos of different sizes (non-square, square, portrait)."""
    folder = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate([(45, 70), (64, 64), (80, 50)]):
        img = rng.integers(0, 255, size=(h, w, 3), dtype=np.uint8)
        img[10:30, 20:40] = (230, 60, 40)
        Image.fromarray(img).save(folder / f"im{i}.png")
    return folder
