"""The frozen-encoder fast path: each training image encoded once, its embedding reused every epoch.

When nothing the image encoder computes with is trainable (LoRA or full training only on the
prompt encoder / mask decoder, as MedSAM trains) and training does not augment (no augmentation
commutes with the encoder), an image's embedding is the same at every step. It is computed the
first time the image is drawn and kept, on the CPU, in ``train.embedding_cache``'s dtype
(``auto``: bfloat16 on a GPU, float32 on the CPU, where that makes the losses equal to the
uncached ones), then copied to the device for every later step.
"""

from __future__ import annotations

import logging

import torch
from torch import nn

from samlora.config import Config
from samlora.models.loading import LoadedModel
from samlora.models.promptable import ImageEmbeddings, core_model, encode

log = logging.getLogger(__name__)

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
_ENCODER_PARAMETERS = ("no_memory_embedding",)  # SAM 2 / SAM 3 tracker add it to the image features


def encoder_is_frozen(model: nn.Module, loaded: LoadedModel) -> bool:
    """Whether no parameter that :func:`~samlora.models.promptable.encode` uses is trainable."""
    core = core_model(model)
    tops = loaded.spec.components.get("vision_encoder", ())
    params = [p for top in tops if hasattr(core, top) for p in core.get_submodule(top).parameters()]
    params += [
        getattr(core, name)
        for name in _ENCODER_PARAMETERS
        if isinstance(getattr(core, name, None), nn.Parameter)
    ]
    return not any(p.requires_grad for p in params)


def embedding_cache_for(
    cfg: Config, model: nn.Module, loaded: LoadedModel, device: torch.device
) -> EmbeddingCache | None:
    """The cache the run uses, or ``None`` (``off``, a trainable encoder, or augmentation on)."""
    setting = cfg.train.embedding_cache
    if setting == "off":
        return None
    a = cfg.augment
    steps = (a.hflip, a.vflip, a.rot90, a.crop, a.brightness, a.contrast, a.saturation, a.hue)
    augmenting = a.enabled and (any(steps) or (a.scale_min, a.scale_max) != (1.0, 1.0))
    if augmenting or not encoder_is_frozen(model, loaded):
        return None
    if setting == "auto":
        dtype = torch.bfloat16 if torch.device(device).type == "cuda" else torch.float32
    else:
        dtype = _DTYPES[setting]
    log.info(
        "the image encoder is frozen and training does not augment: each image is encoded once (%s)", dtype
    )
    return EmbeddingCache(loaded, dtype)


class EmbeddingCache:
    """Per training image (by its index in the split), the :class:`ImageEmbeddings` of one image."""

    def __init__(self, loaded: LoadedModel, dtype: torch.dtype):
        self.loaded = loaded
        self.dtype = dtype
        self.store: dict[int, ImageEmbeddings] = {}

    def embeddings(self, model: nn.Module, indices: list[int], pixels: torch.Tensor) -> ImageEmbeddings:
        """Embeddings of a batch: images ``indices`` whose ``B x 3 x S x S`` ``pixels`` are given.

        Images not seen before are encoded now (without gradients), all others come from the store.
        """
        missing = [b for b, index in enumerate(indices) if index not in self.store]
        if missing:
            rows = torch.tensor(missing, device=pixels.device)
            with torch.no_grad():
                new = encode(model, self.loaded.spec, pixels.index_select(0, rows))
            for j, b in enumerate(missing):
                self.store[indices[b]] = ImageEmbeddings(
                    new.main[j].detach().to("cpu", self.dtype),
                    [t[j].detach().to("cpu", self.dtype) for t in new.extra],
                )
        parts = [self.store[index] for index in indices]
        device = pixels.device

        def stacked(tensors: list[torch.Tensor]) -> torch.Tensor:
            return torch.stack(tensors).to(device, non_blocking=True).float()

        return ImageEmbeddings(
            stacked([p.main for p in parts]),
            [stacked([p.extra[t] for p in parts]) for t in range(len(parts[0].extra))],
        )
