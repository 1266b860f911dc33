"""Adapters on disk: save, check, load, swap, merge and export.

An adapter folder is PEFT's own format (``adapter_config.json`` +
``adapter_model.safetensors``, loadable with ``peft.PeftModel.from_pretrained``)
plus ``samlora.json``: base model, its weight fingerprint, family, task, LoRA
settings, image size, class names and the metrics at save time. Only JSON and
safetensors are ever read; a folder holding pickled weights is refused.

Saves replace the folder atomically (:func:`samlora.io.atomic.replacing_dir`). Reads take a
consistent snapshot of the folder (:func:`samlora.io.atomic.read_snapshot`): reading ``RUN/last``
of a run that is training sees one complete version and changes nothing on disk.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import peft
from torch import nn

from samlora import __version__
from samlora.config import LoraSettings
from samlora.errors import AdapterError
from samlora.io import faults
from samlora.io.atomic import read_snapshot, readable_dir, replacing_dir
from samlora.io.readers import decode_text, parse_json, safetensors_names
from samlora.models.loading import LoadedModel, load_model
from samlora.models.processor import PROCESSOR_CLASSES, save_processor_files

from .card import CARD_FILE, model_card, preprocessing_text, transformers_usage, write_model_card
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
    with replacing_dir(folder) as tmp:
        faults.point("write", tmp / WEIGHTS_FILE)
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
        faults.point("write", tmp / META_FILE)
        (tmp / META_FILE).write_text(json.dumps(metadata, indent=2) + "\n")
        write_model_card(tmp, metadata)  # README.md: replaces PEFT's empty template
    return folder


def save_model_folder(
    model: nn.Module, folder: str | Path, metadata: dict[str, Any], tokenizer: object | None = None
) -> Path:
    """Write a whole model (full fine-tuning) as a transformers folder plus ``samlora.json``, atomically."""
    folder = Path(folder)
    with replacing_dir(folder) as tmp:
        faults.point("write", tmp / "model.safetensors")
        model.save_pretrained(tmp, safe_serialization=True)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        faults.point("write", tmp / META_FILE)
        (tmp / META_FILE).write_text(json.dumps(dict(metadata, full_model=True), indent=2) + "\n")
    return folder


_META_TYPES: dict[str, tuple[type, ...]] = {
    "base_model": (str,),
    "base_fingerprint": (str,),
    "family": (str,),
    "task": (str,),
    "image_size": (int,),
    "lora": (dict,),
    "class_names": (dict,),
    "metrics": (dict,),
    "step": (int,),
}


def _json_object(files: dict[str, bytes], name: str, folder: Path) -> dict[str, Any]:
    path = folder / name
    value = parse_json(
        decode_text(files[name], path, "adapter file", AdapterError), path, "adapter file", AdapterError
    )
    if not isinstance(value, dict):
        raise AdapterError(
            f"{path} must hold a JSON object, not {type(value).__name__}; save the adapter again with samlora"
            + (
                f" (or delete {META_FILE}: the folder then loads as a plain PEFT adapter with --model)"
                if name == META_FILE
                else ""
            )
        )
    return value


def _check_meta(meta: dict[str, Any], folder: Path) -> None:
    """Refuse a ``samlora.json`` whose fields have the wrong types (they steer loading)."""
    for key, types in _META_TYPES.items():
        value = meta.get(key)
        if value is not None and (not isinstance(value, types) or isinstance(value, bool)):
            raise AdapterError(
                f"{folder / META_FILE}: '{key}' must be {types[0].__name__}, got {value!r}; save the adapter "
                f"again with samlora, or fix '{key}'"
            )
    for cid, name in (meta.get("class_names") or {}).items():
        if not (isinstance(cid, str) and cid.lstrip("-").isdigit() and isinstance(name, str)):
            raise AdapterError(
                f"{folder / META_FILE}: 'class_names' must map category ids to names, got {cid!r}: {name!r}"
            )


def validate_adapter(files: dict[str, bytes], folder: Path) -> dict[str, Any]:
    """Check an adapter folder's files (name -> content); return its ``samlora.json`` ({} if absent)."""
    if WEIGHTS_FILE not in files:
        pickled = [name for name in PICKLED if name in files]
        extra = f" It holds {pickled}, which samlora refuses to unpickle." if pickled else ""
        raise AdapterError(f"{folder} has no {WEIGHTS_FILE}.{extra} Save adapters with safetensors.")
    if CONFIG_FILE not in files:
        raise AdapterError(f"{folder} has no {CONFIG_FILE}; it is not a PEFT adapter folder")
    _json_object(files, CONFIG_FILE, folder)
    safetensors_names(files[WEIGHTS_FILE], folder / WEIGHTS_FILE, "adapter weights", AdapterError)
    meta = _json_object(files, META_FILE, folder) if META_FILE in files else {}
    _check_meta(meta, folder)
    return meta


def _snapshot(folder: Path) -> dict[str, bytes]:
    try:
        _, files = read_snapshot(folder)
    except FileNotFoundError:
        raise AdapterError(
            f"adapter folder {folder} does not exist; pass a folder written by samlora (e.g. RUN/best)"
        ) from None
    except OSError as err:
        raise AdapterError(f"cannot read adapter folder {folder}: {err}") from err
    return files


def adapter_folder(folder: str | Path) -> Path:
    """An adapter folder, or a training run folder whose ``best/`` holds the adapter (also while a
    save of the run is replacing ``best/``)."""
    folder = Path(folder)
    if readable_dir(folder) is not None and (readable_dir(folder) / CONFIG_FILE).is_file():
        return folder
    best = readable_dir(folder / "best")
    return folder / "best" if best is not None and (best / CONFIG_FILE).is_file() else folder


def read_adapter(folder: str | Path) -> dict[str, Any]:
    """Validate an adapter folder and return its ``samlora.json`` (empty dict for a plain PEFT adapter).

    Reads one consistent version of the folder (a save going on meanwhile is not mixed in) and
    changes nothing on disk.
    """
    folder = Path(folder)
    meta = validate_adapter(_snapshot(folder), folder)
    if not meta:
        log.warning(
            "%s has no %s; compatibility is checked by layer names and shapes only", folder, META_FILE
        )
    return meta


@contextmanager
def adapter_snapshot(folder: str | Path) -> Iterator[tuple[Path, dict[str, Any]]]:
    """A validated private copy of an adapter folder (for PEFT, which reads paths) and its metadata."""
    import tempfile

    folder = Path(folder)
    files = _snapshot(folder)
    meta = validate_adapter(files, folder)
    with tempfile.TemporaryDirectory(prefix="samlora-adapter-") as tmp:
        for name, data in files.items():
            (Path(tmp) / name).write_bytes(data)
        yield Path(tmp), meta


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
    with adapter_snapshot(folder) as (snapshot, meta):
        check_compatible(meta, loaded, folder)
        return _load_snapshot(loaded, model, snapshot, Path(folder), meta, adapter_name, trainable)


def _load_snapshot(
    loaded: LoadedModel,
    model: nn.Module,
    snapshot: Path,
    folder: Path,
    meta: dict[str, Any],
    adapter_name: str,
    trainable: bool,
) -> peft.PeftModel:
    """:func:`load_adapter` from a validated private copy (``snapshot``) of ``folder``."""
    created = not isinstance(model, peft.PeftModel)
    peft_model = None
    try:
        if created:
            config = peft.LoraConfig.from_pretrained(str(snapshot))
            config.inference_mode = not trainable
            with peft_wrapping():
                peft_model = peft.PeftModel(model, config, adapter_name=adapter_name)
        else:
            peft_model = model
        peft_model.load_adapter(str(snapshot), adapter_name=adapter_name, is_trainable=trainable)
    except (RuntimeError, ValueError, KeyError, TypeError) as err:
        if peft_model is not None:
            _discard(peft_model, adapter_name, created)
        raise AdapterError(
            f"adapter {folder} does not fit model '{loaded.name}' ({loaded.spec.name}): {_first_reason(err)}. "
            f"It was made for '{meta.get('base_model', 'an unknown base')}'."
        ) from err
    in_file = set(safetensors_names((snapshot / WEIGHTS_FILE).read_bytes(), folder / WEIGHTS_FILE))
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
    ours = meta.is_file() and "merged_from" in meta.read_text(errors="replace")
    if not (overwrite and ours):
        why = "pass --overwrite to replace it" if ours else "it is not a model merged by samlora"
        raise AdapterError(
            f"--output {output} already exists and is not empty ({why}); name a new folder for the merged model"
        )


def merge_to_base(model: peft.PeftModel, adapter_name: str | None = None) -> nn.Module:
    """Merge one adapter into the base weights and drop the LoRA layers (fast inference)."""
    names = [adapter_name] if adapter_name else [model.active_adapter]
    return model.merge_and_unload(adapter_names=names)


def load_merged(
    adapter_folder: str | Path, model_name: str | None = None
) -> tuple[LoadedModel, dict[str, Any]]:
    """Load an adapter's base (``model_name`` or the one ``samlora.json`` records) and merge the adapter in.

    Returns the loaded model (its ``model`` now the merged transformers model) and the
    ``samlora.json`` of the merged model (the adapter's, plus ``merged_from`` and ``base_model``).
    """
    with adapter_snapshot(adapter_folder) as (snapshot, meta):  # one consistent version, even of a live run
        name = model_name or meta.get("base_model")
        if not name:
            raise AdapterError(f"{adapter_folder} does not record its base model; pass --model NAME")
        # a base named by the user is loaded as what it is; the adapter check then names both sides
        loaded = load_model(name, family=meta.get("family", "auto") if not model_name else "auto")
        check_compatible(meta, loaded, adapter_folder)
        adapted = _load_snapshot(loaded, loaded.model, snapshot, Path(adapter_folder), meta, "default", False)
        loaded.model = merge_to_base(adapted)
    return loaded, dict(meta, merged_from=str(Path(adapter_folder).resolve()), base_model=name)


def export_merged(
    adapter_folder: str | Path, output: str | Path, model_name: str | None = None, overwrite: bool = False
) -> Path:
    """Merge an adapter into a fresh copy of its base and write a complete transformers model folder.

    The folder holds ``config.json`` + ``model.safetensors``, ``preprocessor_config.json`` with
    samlora's preprocessing (and SAM 3's tokenizer files), so ``AutoModel`` and ``AutoProcessor``
    load it, plus ``samlora.json`` and a model card (``README.md``).

    ``model_name`` defaults to the base recorded in ``samlora.json``. An existing non-empty
    ``output`` is refused, unless ``overwrite`` and it holds a model merged by samlora before.
    """
    output = Path(output).resolve()
    read_adapter(adapter_folder)  # a malformed adapter is refused before the output folder is looked at
    _check_merge_output(output, overwrite)
    loaded, merged_meta = load_merged(adapter_folder, model_name)
    with replacing_dir(output) as tmp:
        loaded.model.save_pretrained(tmp, safe_serialization=True)
        save_processor_files(loaded, tmp)  # preprocessor_config.json (+ the tokenizer of SAM 3)
        (tmp / META_FILE).write_text(json.dumps(merged_meta, indent=2) + "\n")
        (tmp / CARD_FILE).write_text(_merged_folder_card(merged_meta, loaded))
    return output


def _merged_folder_card(meta: dict[str, Any], loaded: LoadedModel) -> str:
    """The model card of a merged folder: the adapter's card, its preprocessing and plain-transformers usage."""
    spec = loaded.spec
    return model_card(
        meta,
        kind="merged",
        sections={"Preprocessing": preprocessing_text(dataclasses.asdict(loaded.preprocessing))},
        load=transformers_usage(spec.model_class, PROCESSOR_CLASSES[spec.name][0], spec.task == "concept"),
    )
