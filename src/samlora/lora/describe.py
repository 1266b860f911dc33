"""What ``samlora info`` prints: a model's family, components, parameters and LoRA targets."""

from __future__ import annotations

import re
from collections import Counter

from torch import nn

from samlora.config import LoraSettings
from samlora.models.families import TARGET_ALIASES
from samlora.models.loading import LoadedModel

from .counts import format_report, parameter_report
from .plan import apply_lora, linear_layers


def component_table(loaded: LoadedModel) -> str:
    """Per component: top-level modules, parameter count, linear layers by kind."""
    model, spec = loaded.model, loaded.spec
    layers = linear_layers(model, spec)
    rows = [("component", "modules", "parameters", "linear layers", "by kind")]
    for component, tops in spec.components.items():
        params = sum(p.numel() for n, p in model.named_parameters() if spec.component_of(n) == component)
        kinds = Counter(kind for comp, kind in layers.values() if comp == component)
        by_kind = ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())) or "-"
        rows.append((component, "+".join(tops), f"{params:,}", str(sum(kinds.values())), by_kind))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r[:4], widths)) + "  " + r[4] for r in rows]
    lines.insert(1, "-" * (sum(widths) + 8 + 10))
    return "\n".join(lines)


def target_names(model: nn.Module, loaded: LoadedModel) -> dict[str, list[str]]:
    """Per component, the linear-layer names LoRA can target (layer indices shown as N)."""
    out: dict[str, set[str]] = {c: set() for c in loaded.spec.components}
    for name, (component, _kind) in linear_layers(model, loaded.spec).items():
        out[component].add(re.sub(r"\.\d+\.", ".N.", name.split(".", 1)[1]) if "." in name else name)
    return {c: sorted(v) for c, v in out.items() if v}


def describe(loaded: LoadedModel, settings: LoraSettings | None = None) -> str:
    """The full ``samlora info`` text; with ``settings`` also the LoRA plan and its parameter report."""
    pre = loaded.preprocessing
    total = sum(p.numel() for p in loaded.model.parameters())
    lines = [
        f"model:       {loaded.name}",
        f"family:      {loaded.spec.name} ({loaded.spec.model_class}, task {loaded.spec.task})",
        f"parameters:  {total:,}",
        f"input:       {pre.image_size} px, resize {pre.resize}, mean {pre.mean}, std {pre.std}",
        f"prompts:     {', '.join(loaded.spec.prompt_types)}",
        f"fingerprint: {loaded.fingerprint}",
        "",
        component_table(loaded),
        "",
        "LoRA short names: " + ", ".join([*TARGET_ALIASES, "all-linear"]),
        "Linear layers LoRA can target, per component:",
    ]
    for component, names in target_names(loaded.model, loaded).items():
        lines.append(f"  {component}:")
        lines.extend(f"    {n}" for n in names)
    if settings is not None:
        peft_model, plan = apply_lora(loaded.model, loaded.spec, settings)
        lines += ["", f"LoRA plan: {len(plan.targets)} layers, regex {plan.target_regex}"]
        if plan.modules_to_save:
            lines.append(f"trained fully: {', '.join(plan.modules_to_save)}")
        lines += [f"note: {n}" for n in plan.notes]
        lines += ["", format_report(parameter_report(peft_model, loaded.spec))]
        peft_model.unload()
    return "\n".join(lines)
