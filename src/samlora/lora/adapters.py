"""Adapters on disk: save, check, load, swap, merge and export.

An adapter folder is PEFT's own format (``adapter_config.json`` +
``adapter_model.safetensors``, loadable with ``peft.PeftModel.from_pretrained``)
plus ``samlora.json``: base model, its weight fingerprint, family, task, LoRA
settings, image size, class names and the metrics at save time. Only JSON and
safetensors are ever read; a folder holding pickled weights is refused.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import peft
from safetensors import safe_open
from torch import nn

from samlora import __version__
from samlora.config import LoraSettings
from samlora.errors import AdapterError
from samlora.models.loading import LoadedModel, load_model

from .card import write_model_card
from .plan import peft_wrapping

log = logging.getLogger(__name__)

META_FILE = "samlora.json"
CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"
PICKLED = ("adapter_model.bin", "adapter_model.pt", "pytorch_model.bin")


def adapter_metadata(
    loaded: LoadedModel,
    settings: LoraSettings,
    *,
    class_names: dict[int, str] | None = None,
    metrics: dict[str, float] | None = None,
    step: int | None = None,
) -> dict[str, Any]:
    """The ``samlora.json`` content describing an adapter of ``loaded``."""
    pre = loaded.preprocessing
    return {
        "samlora_version": __version__,
        "base_model": loaded.name,
        "base_fingerprint": loaded.fingerprint,
        "family": loaded.spec.name,
        "task": loaded.spec.task,
        "image_size": pre.image_size,
        "resize": pre.resize,
        "lora": dataclasses.asdict(settings),
        "class_names": {str(k): v for k, v in (class_names or {}).items()},
        "metrics": metrics or {},
        "step": step,
        "saved_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def recover_replaced_dir(final: Path) -> bool:
    """Put back the previous ``final`` when a kill fell between the two renames of
    :func:`atomic_replace_dir` (``final`` missing, its moved-aside copy still there)."""
    final = Path(final)
    if final.exists() or not final.parent.is_dir():
        return False
    aside = sorted(final.parent.glob(f".{final.name}.old-*"), key=lambda p: p.stat().st_mtime)
    if not aside:
        return False
    aside[-1].rename(final)
    log.warning("%s was being replaced when a run stopped; restored its previous content", final)
    return True


def atomic_replace_dir(tmp: Path, final: Path) -> None:
    """Move a finished ``tmp`` folder to ``final``, replacing it; never leaves a half-written ``final``.

    A kill between moving the old ``final`` aside and renaming ``tmp`` in leaves no ``final``;
    :func:`recover_replaced_dir` (run here and when an adapter is read) puts the old one back.
    """
    final = Path(final)
    recover_replaced_dir(final)
    old = None
    if final.exists():
        old = final.with_name(f".{final.name}.old-{uuid.uuid4().hex[:8]}")
        final.rename(old)
    tmp.rename(final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def save_adapter(
    model: peft.PeftModel, folder: str | Path, metadata: dict[str, Any], adapter_name: str | None = None
) -> Path:
    """Write one adapter as a PEFT folder plus ``samlora.json``, atomically.

    Args:
        model: the PEFT model holding the adapter.
        folder: destination (replaced if it exists).
        metadata: ``samlora.json`` content (see :func:`adapter_metadata`).
        adapter_name: which adapter (default: the active one).
    """
    folder = Path(folder)
    adapter_name = adapter_name or model.active_adapter
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.with_name(f".{folder.name}.tmp-{uuid.uuid4().hex[:8]}")
    # LoRA targets only Linear layers, so no resized vocabulary to save; an explicit False also keeps
    # PEFT from probing the hub for the base model's config.json on every save
    model.save_pretrained(
        str(tmp), selected_adapters=[adapter_name], safe_serialization=True, save_embedding_layers=False
    )
    if adapter_name != "default":  # PEFT writes non-default adapters into a sub-folder
        sub = tmp / adapter_name
        for item in sub.iterdir():
            item.rename(tmp / item.name)
        sub.rmdir()
    (tmp / META_FILE).write_text(json.dumps(metadata, indent=2) + "\n")
    write_model_card(tmp, metadata)  # README.md: replaces PEFT's empty template
    atomic_replace_dir(tmp, folder)
    return folder


def save_model_folder(
    model: nn.Module, folder: str | Path, metadata: dict[str, Any], tokenizer: object | None = None
) -> Path:
    """Write a whole model (full fine-tuning) as a transformers folder plus ``samlora.json``, atomically."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.with_name(f".{folder.name}.tmp-{uuid.uuid4().hex[:8]}")
    model.save_pretrained(tmp, safe_serialization=True)
    if tokenizer is not None:
        tokenizer.save_pretrained(tmp)
    (tmp / META_FILE).write_text(json.dumps(dict(metadata, full_model=True), indent=2) + "\n")
    atomic_replace_dir(tmp, folder)
    return folder


def read_adapter(folder: str | Path) -> dict[str, Any]:
    """Validate an adapter folder and return its ``samlora.json`` (empty dict for a plain PEFT adapter)."""
    folder = Path(folder)
    if not folder.is_dir() and not recover_replaced_dir(folder):
        raise AdapterError(
            f"adapter folder {folder} does not exist; pass a folder written by samlora (e.g. RUN/best)"
        )
    pickled = [name for name in PICKLED if (folder / name).exists()]
    if not (folder / WEIGHTS_FILE).is_file():
        extra = f" It holds {pickled}, which samlora refuses to unpickle." if pickled else ""
        raise AdapterError(f"{folder} has no {WEIGHTS_FILE}.{extra} Save adapters with safetensors.")
    if not (folder / CONFIG_FILE).is_file():
        raise AdapterError(f"{folder} has no {CONFIG_FILE}; it is not a PEFT adapter folder")
    try:
        json.loads((folder / CONFIG_FILE).read_text())
        meta = json.loads((folder / META_FILE).read_text()) if (folder / META_FILE).is_file() else {}
    except json.JSONDecodeError as err:
        raise AdapterError(f"{folder}: malformed JSON ({err})") from err
    if not meta:
        log.warning(
            "%s has no %s; compatibility is checked by layer names and shapes only", folder, META_FILE
        )
    return meta


def check_compatible(meta: dict[str, Any], loaded: LoadedModel, folder: str | Path) -> None:
    """Refuse an adapter made for another family or another base model, naming both."""
    if not meta:
        return
    family = meta.get("family")
    if family and family != loaded.spec.name:
        raise AdapterError(
            f"adapter {folder} was trained for family '{family}' (base '{meta.get('base_model')}') but the "
            f"loaded model '{loaded.name}' is family '{loaded.spec.name}'; load it onto its own base model"
        )
    fingerprint = meta.get("base_fingerprint")
    if fingerprint and fingerprint != loaded.fingerprint:
        raise AdapterError(
            f"adapter {folder} was trained on base model '{meta.get('base_model')}' (weights {fingerprint}) "
            f"but the loaded model '{loaded.name}' has different weights ({loaded.fingerprint}); "
            f"pass --model {meta.get('base_model')} or the folder of that model"
        )


def load_adapter(
    loaded: LoadedModel,
    model: nn.Module,
    folder: str | Path,
    adapter_name: str = "default",
    trainable: bool = False,
) -> peft.PeftModel:
    """Load an adapter onto ``model`` (the base, or a PEFT model already holding adapters).

    The base weights are shared: several adapters live on one base, switched
    with :func:`use_adapter`. Every tensor in the file must land on a layer.
    """
    meta = read_adapter(folder)
    check_compatible(meta, loaded, folder)
    weights = Path(folder) / WEIGHTS_FILE
    created = not isinstance(model, peft.PeftModel)
    peft_model = None
    try:
        if created:
            config = peft.LoraConfig.from_pretrained(str(folder))
            config.inference_mode = not trainable
            with peft_wrapping():
                peft_model = peft.PeftModel(model, config, adapter_name=adapter_name)
        else:
            peft_model = model
        peft_model.load_adapter(str(folder), adapter_name=adapter_name, is_trainable=trainable)
    except (RuntimeError, ValueError, KeyError, TypeError) as err:
        if peft_model is not None:
            _discard(peft_model, adapter_name, created)
        raise AdapterError(
            f"adapter {folder} does not fit model '{loaded.name}' ({loaded.spec.name}): {_first_reason(err)}. "
            f"It was made for '{meta.get('base_model', 'an unknown base')}'."
        ) from err
    with safe_open(str(weights), framework="pt") as f:
        in_file = set(f.keys())
    in_model = set(
        peft.get_peft_model_state_dict(peft_model, adapter_name=adapter_name, save_embedding_layers=False)
    )
    if in_file != in_model:
        unexpected, missing = sorted(in_file - in_model), sorted(in_model - in_file)
        _discard(peft_model, adapter_name, created)
        raise AdapterError(
            f"adapter {folder} does not fit model '{loaded.name}': "
            f"{len(unexpected)} tensors found no layer (e.g. {unexpected[:3]}), {len(missing)} adapter tensors missing "
            f"(e.g. {missing[:3]}). It was made for '{meta.get('base_model', 'an unknown base')}'."
        )
    peft_model.set_adapter(adapter_name)
    if not trainable:
        peft_model.eval()
    return peft_model


def _first_reason(err: Exception) -> str:
    """The informative line of a load error (torch puts the shapes under a generic first line)."""
    lines = [line.strip().rstrip(".") for line in str(err).splitlines() if line.strip()]
    detail = next((line for line in lines if "size mismatch" in line or "Missing key" in line), None)
    return detail or (lines[0] if lines else type(err).__name__)


def _discard(peft_model: peft.PeftModel, adapter_name: str, created: bool) -> None:
    """Remove a refused adapter so the base model is left as it was."""
    if created:
        peft_model.unload()
    elif adapter_name in peft_model.peft_config:
        peft_model.delete_adapter(adapter_name)


def use_adapter(model: peft.PeftModel, adapter_name: str) -> None:
    """Make ``adapter_name`` the active adapter (the base stays loaded once)."""
    if adapter_name not in model.peft_config:
        raise AdapterError(f"no adapter named '{adapter_name}'; loaded adapters: {sorted(model.peft_config)}")
    model.set_adapter(adapter_name)


def _check_merge_output(output: Path, overwrite: bool) -> None:
    """Refuse to replace a folder that holds anything but an earlier merge (with ``overwrite``)."""
    if not output.exists():
        return
    if not output.is_dir():
        raise AdapterError(f"--output {output} is a file; name a new folder for the merged model")
    if not any(output.iterdir()):
        if output == Path.cwd().resolve():
            raise AdapterError("--output is the current folder; name a new folder for the merged model")
        return
    meta = output / META_FILE
    ours = meta.is_file() and "merged_from" in meta.read_text()
    if not (overwrite and ours):
        why = "pass --overwrite to replace it" if ours else "it is not a model merged by samlora"
        raise AdapterError(
            f"--output {output} already exists and is not empty ({why}); name a new folder for the merged model"
        )


def merge_to_base(model: peft.PeftModel, adapter_name: str | None = None) -> nn.Module:
    """Merge one adapter into the base weights and drop the LoRA layers (fast inference)."""
    names = [adapter_name] if adapter_name else [model.active_adapter]
    return model.merge_and_unload(adapter_names=names)


def export_merged(
    adapter_folder: str | Path, output: str | Path, model_name: str | None = None, overwrite: bool = False
) -> Path:
    """Merge an adapter into a fresh copy of its base and write a full transformers model folder.

    ``model_name`` defaults to the base recorded in ``samlora.json``. An existing non-empty
    ``output`` is refused, unless ``overwrite`` and it holds a model merged by samlora before.
    """
    meta = read_adapter(adapter_folder)
    output = Path(output).resolve()
    _check_merge_output(output, overwrite)
    name = model_name or meta.get("base_model")
    if not name:
        raise AdapterError(f"{adapter_folder} does not record its base model; pass --model NAME")
    # a base named by the user is loaded as what it is; the adapter check then names both sides
    loaded = load_model(name, family=meta.get("family", "auto") if not model_name else "auto")
    merged = merge_to_base(load_adapter(loaded, loaded.model, adapter_folder))
    tmp = output.with_name(f".{output.name}.tmp-{uuid.uuid4().hex[:8]}")
    merged.save_pretrained(tmp, safe_serialization=True)
    if loaded.tokenizer is not None:
        loaded.tokenizer.save_pretrained(tmp)
    merged_meta = dict(meta, merged_from=str(Path(adapter_folder).resolve()), base_model=name)
    (tmp / META_FILE).write_text(json.dumps(merged_meta, indent=2) + "\n")
    atomic_replace_dir(tmp, output)
    return output
