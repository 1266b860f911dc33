"""Load a model of the SAM family from a hub id, a local folder or a samlora preset.

Every source goes through ``<ModelClass>.from_pretrained``: a preset is only a
local ``save_pretrained`` folder, so tests exercise the path a hub id takes.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import torch
import transformers
from torch import nn

from samlora.errors import ModelLoadError
from samlora.io.atomic import read_pinned, readable_dir
from samlora.io.readers import check_safetensors, read_json

from .families import FAMILIES, FAMILY_NAMES, FamilySpec, family_for_model_type
from .preprocess import Preprocessing

log = logging.getLogger(__name__)


@dataclass
class LoadedModel:
    """A base model with what samlora needs to know about it.

    Attributes:
        model: the transformers model (``SamModel``, ``Sam3Model``, ...), frozen.
        spec: its family.
        name: the name it was loaded by (hub id, folder or preset).
        fingerprint: a short hash of the base weights; adapters record it so a
            wrong base model is refused even when names differ.
        preprocessing: input size, resize mode and normalisation.
        tokenizer: the text tokenizer of concept models, else ``None``.
    """

    model: nn.Module
    spec: FamilySpec
    name: str
    fingerprint: str
    preprocessing: Preprocessing
    tokenizer: object | None = None


def resolve_source(name: str) -> str:
    """Map a preset name to its folder; return other names unchanged."""
    from .presets import preset_folder

    folder = preset_folder(name)
    return str(folder) if folder is not None else name


def _looks_like_path(name: str) -> bool:
    """A name that can only be a file-system path, never a hub id (``org/name``)."""
    return (
        name.startswith(("/", "./", "../", "~", "."))
        or "\\" in name
        or name.count("/") > 1
        or name.endswith("/")
    )


HUB_PROBE_TIMEOUT_S = 3.0
"""Seconds one probe of the hub endpoint may take before samlora treats the hub as unreachable
(``$SAMLORA_HUB_TIMEOUT`` overrides it)."""


def hub_offline() -> bool:
    """Whether hub ids must come from the local cache: ``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) is
    set, or one short probe of the hub endpoint (``HF_ENDPOINT``) gets no answer. The probe runs once per
    process, so an unreachable hub costs seconds instead of the hub client's retries with back-off."""
    from huggingface_hub import constants

    flags = (os.environ.get("HF_HUB_OFFLINE"), os.environ.get("TRANSFORMERS_OFFLINE"))
    if constants.is_offline_mode() or any(f and f.lower() not in ("0", "false", "no", "off") for f in flags):
        return True
    timeout = float(os.environ.get("SAMLORA_HUB_TIMEOUT") or HUB_PROBE_TIMEOUT_S)
    return not _reachable(constants.ENDPOINT, timeout)


@functools.lru_cache(maxsize=4)
def _reachable(endpoint: str, timeout: float) -> bool:
    """One HEAD request to ``endpoint`` through the hub's own HTTP session (its proxies); any answer counts."""
    from huggingface_hub import get_session

    try:
        get_session().head(endpoint, timeout=timeout)
    except (
        Exception
    ) as err:  # connection refused, DNS failure, timeout, proxy error: all mean "not reachable"
        log.debug(
            "the hub at %s is not reachable (%r); hub ids come from the local cache only", endpoint, err
        )
        return False
    return True


def _local_only(source: str) -> bool:
    """``local_files_only`` for ``from_pretrained``: a local folder never needs the hub; a hub id does unless offline."""
    return not Path(source).exists() and hub_offline()


PICKLED_WEIGHTS = ("*.bin", "*.pt", "*.pth", "*.ckpt", "*.pkl", "*.pickle")
"""Weight files samlora never hands to ``torch.load``: only safetensors are read from model folders."""


def check_model_folder(folder: Path, name: str) -> None:
    """A local model folder must hold a readable config.json and safetensors weights (never only a pickle)."""
    if not (folder / "config.json").is_file():
        raise ModelLoadError(
            f"'{name}' is a folder but has no config.json; pass a folder written by "
            "`save_pretrained` (config.json + model.safetensors)."
        )
    config = read_json(folder / "config.json", "model config", ModelLoadError)
    if not isinstance(config, dict):
        raise ModelLoadError(f"{folder / 'config.json'} must hold a JSON object; save the model again")
    weights = sorted(folder.glob("*.safetensors"))
    if not weights:
        pickled = sorted(p.name for pattern in PICKLED_WEIGHTS for p in folder.glob(pattern))
        held = (
            f" It holds {pickled}: pickled weights, which samlora never unpickles (loading a pickle runs code)."
            if pickled
            else ""
        )
        raise ModelLoadError(
            f"model folder {folder} has no safetensors weights (model.safetensors).{held} Fix: convert it once "
            "where you trust the file: `Model.from_pretrained(folder).save_pretrained(out, safe_serialization=True)`"
        )
    for path in weights:
        check_safetensors(path, "model weights", ModelLoadError)


def read_config(name: str, source: str | None = None) -> transformers.PretrainedConfig:
    """Read the transformers config of ``name`` (folder or hub id) with a clear error offline
    (from ``source`` when given: where ``name`` is read from)."""
    source = source or resolve_source(name)
    local = Path(source)
    if local.is_dir():
        check_model_folder(local, name)
    elif local.exists():
        raise ModelLoadError(f"model '{name}' is a file; pass the folder written by `save_pretrained`")
    if not local.exists() and _looks_like_path(source):
        raise ModelLoadError(
            f"model folder '{name}' does not exist; pass a folder written by `save_pretrained` "
            "(config.json + model.safetensors), a hub id like facebook/sam-vit-base, or a samlora preset "
            "(samlora info --presets)"
        )
    try:
        offline = _local_only(source)
        return transformers.AutoConfig.from_pretrained(source, local_files_only=offline)
    except (OSError, ValueError) as err:
        hint = (
            "the Hugging Face Hub is not reachable from here"
            if offline or "offline" in str(err).lower() or "connect" in str(err).lower()
            else "it is neither a local folder nor a hub id that could be resolved"
        )
        raise ModelLoadError(
            f"Could not load model '{name}': {hint}. Pass a local folder saved with "
            "`save_pretrained` (model.name: /path/to/folder), a samlora preset "
            f"(samlora info --presets), or connect once so the hub id is cached. ({err.__class__.__name__}: "
            f"{str(err).splitlines()[0] if str(err) else ''})"
        ) from err


def detect_family(config: transformers.PretrainedConfig, requested: str = "auto") -> FamilySpec:
    """Family of a config; ``requested`` (from ``model.family``) must agree with it.

    A ``sam3_video`` checkpoint holds both the concept detector and the tracker:
    ``auto`` gives ``sam3``, ``sam3_tracker`` selects the promptable tracker.
    """
    model_type = getattr(config, "model_type", "")
    if requested != "auto":
        if requested not in FAMILIES:
            raise ModelLoadError(
                f"Unknown model.family '{requested}'; choose one of auto, {', '.join(FAMILY_NAMES)}."
            )
        spec = FAMILIES[requested]
        compatible = model_type in spec.model_types or (
            requested == "sam3_tracker" and model_type == "sam3_video"
        )
        if not compatible:
            detected = family_for_model_type(model_type)
            raise ModelLoadError(
                f"model.family is '{requested}' but the model's config says model_type '{model_type}'"
                + (f" (family '{detected.name}')" if detected else "")
                + "; set model.family to auto or to the model's family."
            )
        return spec
    spec = family_for_model_type(model_type)
    if spec is None:
        raise ModelLoadError(
            f"model_type '{model_type}' is not a Segment Anything family samlora supports "
            f"({', '.join(FAMILY_NAMES)})."
        )
    return spec


def weights_fingerprint(model: nn.Module) -> str:
    """Hash of every parameter's name, shape and first values: identifies a base model cheaply."""
    digest = hashlib.sha256()
    for name, param in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(str(tuple(param.shape)).encode())
        head = param.detach().reshape(-1)[:8].to(torch.float32).cpu().numpy()
        digest.update(head.tobytes())
    return digest.hexdigest()[:16]


def load_model(name: str, family: str = "auto", device: str | torch.device = "cpu") -> LoadedModel:
    """Load a base model, frozen and in eval mode, with its family and preprocessing.

    Args:
        name: hub id, local ``save_pretrained`` folder, or a samlora preset name.
        family: ``auto`` or one of :data:`FAMILY_NAMES`; checked against the config.
        device: where to put the model.
    """
    source = resolve_source(name)
    if readable_dir(source) is not None:  # a local folder: maybe a live run's last/ or best/
        return read_pinned(source, lambda pinned: _load(name, pinned, family, device, source))
    return _load(name, source, family, device, source)


def _load(name: str, source: str, family: str, device: str | torch.device, origin: str) -> LoadedModel:
    """:func:`load_model` from ``source`` (a hub id, or a folder path pinned to one version of
    ``origin``, the path the model keeps as its name)."""
    config = read_config(name, source)
    spec = detect_family(config, family)
    model_class = getattr(transformers, spec.model_class)
    try:  # safetensors only, for hub ids too: a pickle is never handed to torch.load
        model = model_class.from_pretrained(
            source, use_safetensors=True, local_files_only=_local_only(source)
        )
    except (OSError, ValueError, RuntimeError) as err:
        raise ModelLoadError(f"Could not load the weights of '{name}' as {spec.model_class}: {err}") from err
    model.config._name_or_path = model.name_or_path = origin  # not the pinned /proc/self/fd/N path
    model.requires_grad_(False)
    model.eval()
    model.to(device)
    tokenizer = load_tokenizer(source) if spec.task == "concept" else None
    if tokenizer is not None:
        tokenizer.name_or_path = origin
    return LoadedModel(
        model=model,
        spec=spec,
        name=name,
        fingerprint=weights_fingerprint(model),
        preprocessing=Preprocessing.for_model(model.config, spec),
        tokenizer=tokenizer,
    )


def load_tokenizer(source: str) -> object:
    """The text tokenizer stored beside a concept model (CLIP BPE for SAM 3)."""
    try:
        return transformers.AutoTokenizer.from_pretrained(source, local_files_only=_local_only(source))
    except (OSError, ValueError) as err:
        raise ModelLoadError(
            f"Model '{source}' is a concept (text-prompt) model but no tokenizer could be loaded from it; "
            "the folder needs tokenizer files (tokenizer.json or vocab.json + merges.txt) saved with "
            f"`tokenizer.save_pretrained`. ({err})"
        ) from err


def enable_activation_checkpointing(model: nn.Module) -> None:
    """Recompute the vision backbone's layer activations in the backward pass (memory for compute).

    Uses the vision encoder's own transformers support (its layers are
    ``GradientCheckpointingLayer``), so it works for every family, also where the
    top-level model does not declare support (SAM 3 tracker).
    """
    import functools

    from torch.utils.checkpoint import checkpoint
    from transformers.modeling_layers import GradientCheckpointingLayer

    encoder = model.get_submodule("vision_encoder")
    layers = [m for m in encoder.modules() if isinstance(m, GradientCheckpointingLayer)]
    if not layers:
        raise ModelLoadError(
            f"the vision encoder of {type(model).__name__} has no checkpointable layers; set model.gradient_checkpointing false"
        )
    recompute = functools.partial(checkpoint, use_reentrant=False)
    for layer in layers:
        layer.gradient_checkpointing = True
        layer._gradient_checkpointing_func = recompute
