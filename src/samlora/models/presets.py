"""Named models that need no download: tiny random models and the shipped reference model.

``model.name: tiny-sam`` (or any name below) resolves to a local
``save_pretrained`` folder; tiny models are built on first use into the cache
folder (``$SAMLORA_CACHE`` or ``~/.cache/samlora``), the reference model ships
inside the package.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

TINY_PRESETS = {
    "tiny-sam": "sam",
    "tiny-sam-hq": "sam_hq",
    "tiny-sam2": "sam2",
    "tiny-sam3": "sam3",
    "tiny-sam3-tracker": "sam3_tracker",
}
REFERENCE_PRESET = "samlora-reference"
PRESET_DESCRIPTIONS = {
    REFERENCE_PRESET: "SAM architecture, 3.8 M parameters, pretrained on a synthetic natural domain; "
    "ships with samlora, the base model of `samlora demo`",
    **{
        name: f"tiny random {family} model (a few hundred thousand parameters, untrained) for tests and smoke runs"
        for name, family in TINY_PRESETS.items()
    },
}
"""One line per preset, for ``samlora info --presets`` (read without loading any weights)."""
ASSETS = Path(__file__).resolve().parent.parent / "assets"


def cache_dir() -> Path:
    """Where samlora keeps generated files (``$SAMLORA_CACHE`` or ``~/.cache/samlora``)."""
    return Path(os.environ.get("SAMLORA_CACHE") or Path.home() / ".cache" / "samlora")


def preset_names() -> list[str]:
    """Every preset name, the reference model first when it is installed."""
    names = list(TINY_PRESETS)
    if (ASSETS / "reference").is_dir():
        names.insert(0, REFERENCE_PRESET)
    return names


def preset_folder(name: str) -> Path | None:
    """The local folder of a preset (built on first use), or ``None`` if ``name`` is not a preset."""
    if name == REFERENCE_PRESET:
        return ASSETS / "reference"
    family = TINY_PRESETS.get(name)
    if family is None:
        return None
    folder = cache_dir() / "presets" / name
    if not (folder / "config.json").is_file():
        from .tiny import save_tiny_model

        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=folder.parent))
        save_tiny_model(family, tmp)
        try:
            tmp.rename(folder)
        except OSError:  # another process built it first
            shutil.rmtree(tmp, ignore_errors=True)
    return folder
