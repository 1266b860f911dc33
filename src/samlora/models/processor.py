"""The transformers processor settings that reproduce samlora's preprocessing of a model.

A merged model folder carries them as ``preprocessor_config.json``, so that
``AutoProcessor.from_pretrained(folder)`` (``SamProcessor``, ``Sam2Processor``, ...)
resizes, normalises and pads images as samlora does (see
:class:`~samlora.models.preprocess.Preprocessing`) and maps prompt coordinates and
masks the same way.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .loading import LoadedModel

PROCESSOR_FILE = "preprocessor_config.json"
BILINEAR = 2  # PIL.Image.Resampling.BILINEAR, as transformers stores it

# family -> (processor class, image processor class), as transformers names them
PROCESSOR_CLASSES: dict[str, tuple[str, str]] = {
    "sam": ("SamProcessor", "SamImageProcessor"),
    "sam_hq": ("SamHQProcessor", "SamImageProcessor"),
    "sam2": ("Sam2Processor", "Sam2ImageProcessor"),
    "sam3_tracker": ("Sam3TrackerProcessor", "Sam3ImageProcessor"),
    "sam3": ("Sam3Processor", "Sam3ImageProcessor"),
}


def processor_config(loaded: LoadedModel) -> dict[str, Any]:
    """The ``preprocessor_config.json`` content for ``loaded`` (input size, resize mode, mean/std, mask size)."""
    pre, family = loaded.preprocessing, loaded.spec.name
    processor, image_processor = PROCESSOR_CLASSES[family]
    size, low = pre.image_size, pre.low_res_size
    config: dict[str, Any] = {
        "processor_class": processor,
        "image_processor_type": image_processor,
        "do_convert_rgb": True,
        "do_resize": True,
        "resample": BILINEAR,
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "image_mean": list(pre.mean),
        "image_std": list(pre.std),
    }
    if pre.resize == "longest_side":  # SAM, SAM-HQ: longest side to S, pad bottom/right to S x S
        config.update(
            size={"longest_edge": size},
            do_pad=True,
            pad_size={"height": size, "width": size},
            mask_size={"longest_edge": low},
            mask_pad_size={"height": low, "width": low},
        )
    else:  # SAM 2, SAM 3: both sides to S, no padding
        config.update(size={"height": size, "width": size}, mask_size={"height": low, "width": low})
    return config


def save_processor_files(loaded: LoadedModel, folder: str | Path) -> list[str]:
    """Write ``preprocessor_config.json`` (and the tokenizer of a concept model) into ``folder``; returns the names."""
    folder = Path(folder)
    (folder / PROCESSOR_FILE).write_text(json.dumps(processor_config(loaded), indent=2) + "\n")
    written = [PROCESSOR_FILE]
    if loaded.tokenizer is not None:
        written += [Path(p).name for p in loaded.tokenizer.save_pretrained(folder)]
    return written
