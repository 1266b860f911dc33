"""What ``samlora export`` starts from: an adapter (or run) folder, a merged folder, or a base model alone."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from samlora import __version__
from samlora.errors import ExportError
from samlora.lora.adapters import CONFIG_FILE, META_FILE, load_merged
from samlora.models.loading import LoadedModel, load_model
from samlora.predict.predictor import resolve_adapter


@dataclass
class ExportSource:
    """A model ready to export: adapters already merged into ``loaded.model``.

    Attributes:
        loaded: the model (frozen, eval, CPU).
        meta: ``samlora.json`` of what was exported (adapter settings and metrics, ``merged_from``),
            or a minimal record for a base model.
        kind: ``adapter`` (merged here), ``merged`` (a merged folder), ``model`` (another folder
            samlora wrote, e.g. a full fine-tune) or ``base``.
    """

    loaded: LoadedModel
    meta: dict[str, Any]
    kind: str


def load_for_export(source: str, model_name: str | None = None) -> ExportSource:
    """Load ``source`` for export: an adapter or run folder (merged into its base, or into ``model_name``),
    a merged folder written by ``samlora adapters merge``, or any model name ``load_model`` takes."""
    adapter = resolve_adapter(Path(source))
    if (adapter / CONFIG_FILE).is_file():
        loaded, meta = load_merged(adapter, model_name)
        return ExportSource(loaded, meta, "adapter")
    if model_name:
        raise ExportError(
            f"--model names the base model of an adapter, but {source} is not an adapter or run folder "
            f"(no {CONFIG_FILE}); drop --model to export {source} itself"
        )
    loaded = load_model(source)
    meta_file = Path(source) / META_FILE
    meta = json.loads(meta_file.read_text()) if meta_file.is_file() else {}
    if meta:  # a merged folder, or a fully fine-tuned model written by samlora
        return ExportSource(loaded, meta, "merged" if "merged_from" in meta else "model")
    base = {
        "samlora_version": __version__,
        "base_model": source,
        "family": loaded.spec.name,
        "task": loaded.spec.task,
    }
    return ExportSource(loaded, base, "base")
