"""Parameter counts per component: LoRA, fully trained and frozen, as a table users can read."""

from __future__ import annotations

from dataclasses import dataclass

import peft
from torch import nn

from samlora.models.families import FamilySpec


@dataclass
class ComponentCount:
    """Parameter counts of one component."""

    lora: int = 0
    full: int = 0
    frozen: int = 0

    @property
    def base(self) -> int:
        """Parameters of the base model in this component (fully trained ones included once)."""
        return self.full + self.frozen

    @property
    def trainable(self) -> int:
        return self.lora + self.full

    @property
    def percent(self) -> float:
        """Trainable share of all parameters (base + LoRA), in percent."""
        return 100.0 * self.trainable / max(self.base + self.lora, 1)


def parameter_report(
    model: nn.Module, spec: FamilySpec, adapter_name: str | None = None
) -> dict[str, ComponentCount]:
    """Per component: LoRA parameters, fully-trained parameters and frozen base parameters.

    Works on a base model or a PEFT model; with several adapters only
    ``adapter_name`` (default: the active one) is counted.
    """
    if adapter_name is None and isinstance(model, peft.PeftModel):
        adapter_name = model.active_adapter
    counts: dict[str, ComponentCount] = {c: ComponentCount() for c in spec.components}
    counts["other"] = ComponentCount()
    for name, param in model.named_parameters():
        name = name.removeprefix("base_model.model.")
        component = spec.component_of(name) or "other"
        count = counts[component]
        parts = name.split(".")
        if any(p.startswith("lora_") for p in parts):
            if adapter_name is None or adapter_name in parts:
                count.lora += param.numel()
        elif "modules_to_save" in parts:
            if adapter_name is None or adapter_name in parts:
                count.full += param.numel()
        elif "original_module" in parts:
            continue  # the frozen original of a fully-trained module: counted once, via its copy
        elif param.requires_grad and not isinstance(model, peft.PeftModel):
            count.full += param.numel()  # full fine-tuning without PEFT
        else:
            count.frozen += param.numel()
    if not counts["other"].base and not counts["other"].lora:
        del counts["other"]
    return counts


def format_report(counts: dict[str, ComponentCount]) -> str:
    """The trainable-parameter table users compare with '~1%' and '4.4%'."""
    rows = [("component", "LoRA", "fully trained", "frozen", "trainable %")]
    total = ComponentCount()
    for name, c in counts.items():
        rows.append((name, f"{c.lora:,}", f"{c.full:,}", f"{c.frozen:,}", f"{c.percent:.2f}"))
        total.lora += c.lora
        total.full += c.full
        total.frozen += c.frozen
    rows.append(("total", f"{total.lora:,}", f"{total.full:,}", f"{total.frozen:,}", f"{total.percent:.2f}"))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = [
        "  ".join(cell.rjust(w) if i else cell.ljust(w) for i, (cell, w) in enumerate(zip(r, widths)))
        for r in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.insert(len(lines) - 1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
