"""Configs of the SAM3-LoRA tool (``train_sam3_lora_native.py --config``), read as samlora configs.

The tool's YAML has three sections: ``lora`` (``rank``, ``alpha``, ``dropout``, ``target_modules`` and
one ``apply_to_<component>: true|false`` flag per SAM 3 component), ``training`` (``data_dir``,
``batch_size``, ``num_epochs``, ``learning_rate``, ...) and ``output`` (``output_dir``); it always
fine-tunes ``facebook/sam3``. :func:`from_sam3_lora` maps such a file onto samlora's tree (see
:data:`TRAINING_KEYS`); :func:`known_meaning` gives the samlora key of a tool key met in a samlora
config or on the command line, for the "did you mean" of an unknown key.
"""

from __future__ import annotations

import re
from typing import Any

TOOL = "SAM3-LoRA"
TOOL_MODEL = "facebook/sam3"
"""The base model the tool always trains (it has no model key)."""

COMPONENTS = (
    "vision_encoder",
    "text_encoder",
    "geometry_encoder",
    "detr_encoder",
    "detr_decoder",
    "mask_decoder",
)
"""The tool's ``apply_to_<name>`` components, in SAM 3's order; samlora's SAM 3 components carry the same names."""

LORA_KEYS = {
    "rank": "lora.rank",
    "alpha": "lora.alpha",
    "dropout": "lora.dropout",
    "target_modules": "lora.target_modules",
}
TRAINING_KEYS = {
    "data_dir": "data.root",
    "batch_size": "train.batch_size",
    "num_epochs": "train.epochs",
    "learning_rate": "train.lr",
    "weight_decay": "train.weight_decay",
    "gradient_accumulation_steps": "train.grad_accum",
    "num_workers": "train.num_workers",
    "eval_steps": "train.eval_every",
    "warmup_steps": "train.warmup_steps",
    "max_grad_norm": "train.grad_clip",
    "mixed_precision": "train.precision",
    "logging_steps": "train.log_every",
    "seed": "train.seed",
}
"""``training.<key>`` of the tool -> samlora's dotted key (the README's "Coming from SAM3-LoRA" table)."""
OUTPUT_KEYS = {"output_dir": "output.dir"}
FOREIGN_SECTIONS = {"training": "train"}
"""Sections of the tool that samlora names differently: where their unknown keys land."""


def is_sam3_lora(data: dict[str, Any]) -> bool:
    """Whether a config mapping is in the tool's format: a ``training`` section, ``lora.apply_to_*`` flags
    or ``output.output_dir`` (samlora's own tree has none of these)."""
    lora, output = data.get("lora"), data.get("output")
    return (
        isinstance(data.get("training"), dict)
        or (isinstance(lora, dict) and any(str(k).startswith("apply_to_") for k in lora))
        or (isinstance(output, dict) and "output_dir" in output)
    )


_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+")


def _put(out: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``section.key``; a number YAML 1.1 left as text (``5e-5``) becomes the number it is."""
    section, key = dotted.split(".", 1)
    out.setdefault(section, {})[key] = (
        float(value) if isinstance(value, str) and _NUMBER.fullmatch(value) else value
    )


UNTRAINED = {
    "geometry_encoder": "text-prompt training gives no box or point prompts, so SAM 3's geometry encoder never "
    "runs and its LoRA would stay untrained (the tool saves it unchanged); samlora leaves it out"
}
"""Components the tool adapts that samlora's text-prompt training cannot train, and why they are left out."""


def from_sam3_lora(data: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The samlora config mapping of a tool config (only the keys it sets, plus ``model.name``), and notes
    on what changed meaning.

    ``apply_to_X: true`` puts component ``X`` in ``lora.components`` (after any ``lora.components`` the file
    already lists), except those of :data:`UNTRAINED` (a note says why); keys samlora does not know stay in the
    section they map to (``training.foo`` -> ``train.foo``), so validation names them with the closest
    samlora key; samlora sections pass through.
    """
    out: dict[str, Any] = {}
    notes: list[str] = []
    for section, values in data.items():
        if section in ("lora", "training", "output") and isinstance(values, dict):
            continue
        out[section] = values
    if not isinstance(out.get("model"), dict) or "name" not in out["model"]:
        out.setdefault("model", {}) if isinstance(out.get("model"), dict) else out.update(model={})
        out["model"]["name"] = TOOL_MODEL
    lora = data.get("lora") if isinstance(data.get("lora"), dict) else {}
    components = list(lora.get("components") or [])
    flags = {str(k): v for k, v in lora.items() if str(k).startswith("apply_to_")}
    for name in COMPONENTS:
        if flags.get(f"apply_to_{name}") is True and name in UNTRAINED:
            notes.append(f"apply_to_{name}: true is not carried over: {UNTRAINED[name]}")
        elif flags.get(f"apply_to_{name}") is True and name not in components:
            components.append(name)
    for key, value in lora.items():
        if key in LORA_KEYS:
            _put(out, LORA_KEYS[key], value)
        elif key == "components":
            continue
        elif str(key).startswith("apply_to_") and str(key)[len("apply_to_") :] in COMPONENTS:
            if not isinstance(value, bool):
                _put(out, f"lora.{key}", value)  # left for validation to report as not true/false
        else:
            _put(out, f"lora.{key}", value)
    if flags or "components" in lora:  # listed after rank/alpha/dropout, before target_modules
        section = out.setdefault("lora", {})
        after = [k for k in section if k not in ("rank", "alpha", "dropout", "components")]
        section["components"] = components
        for key in after:
            section[key] = section.pop(key)
    for section, table in (("training", TRAINING_KEYS), ("output", OUTPUT_KEYS)):
        values = data.get(section) if isinstance(data.get(section), dict) else {}
        for key, value in values.items():
            _put(out, table.get(key) or f"{FOREIGN_SECTIONS.get(section, section)}.{key}", value)
    return out, notes


GENERIC_LEAVES = {"batch_size", "weight_decay", "num_workers", "warmup_steps", "seed"}
"""Tool keys whose name alone does not say which samlora section they belong to (only under ``training``)."""


def known_meaning(key: str) -> str | None:
    """samlora's spelling of a dotted key known from the tool (``lora.apply_to_detr_encoder`` ->
    ``lora.components: [..., detr_encoder]``, ``training.data_dir`` -> ``data.root``), else ``None``."""
    section, _, leaf = key.rpartition(".")
    if leaf.startswith("apply_to_") and leaf[len("apply_to_") :] in COMPONENTS:
        return f"lora.components: [..., {leaf[len('apply_to_') :]}]"
    if section in FOREIGN_SECTIONS:
        return TRAINING_KEYS.get(leaf) or f"{FOREIGN_SECTIONS[section]}.{leaf}"
    distinctive = {**TRAINING_KEYS, **OUTPUT_KEYS}
    return distinctive[leaf] if leaf in distinctive and leaf not in GENERIC_LEAVES else None
