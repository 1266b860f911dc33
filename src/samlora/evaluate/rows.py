"""The rows of an evaluation: adapters loaded onto one base model, and switching between them."""

from __future__ import annotations

from pathlib import Path

import peft
import torch

from samlora.lora.adapters import load_adapter, use_adapter
from samlora.models.loading import LoadedModel

from .compare import BASE
from .report import model_label


def load_rows(
    loaded: LoadedModel, adapters: list[str | Path], device: torch.device
) -> tuple[torch.nn.Module, list[str]]:
    """Load every adapter onto the base (adapter ``a{i}``); return the model and the unique row names."""
    model: torch.nn.Module = loaded.model
    labels: list[str] = []
    for i, folder in enumerate(adapters):
        label = model_label(folder)
        labels.append(label if label not in labels and label != BASE else f"{label}-{i}")
        model = load_adapter(loaded, model, folder, adapter_name=f"a{i}")
    model.to(device)
    return model, labels


class active:
    """Context: make ``row`` the active model (an adapter, or the vanilla base with adapters disabled)."""

    def __init__(self, model: torch.nn.Module, row: str, labels: list[str]):
        self.model, self.row, self.labels = model, row, labels
        self.ctx = None

    def __enter__(self) -> None:
        if self.row == BASE:
            if isinstance(self.model, peft.PeftModel):
                self.ctx = self.model.disable_adapter()
                self.ctx.__enter__()
        else:
            use_adapter(self.model, f"a{self.labels.index(self.row)}")

    def __exit__(self, *exc) -> None:
        if self.ctx is not None:
            self.ctx.__exit__(*exc)
