"""Which device a command runs on and the autocast context of its precision."""

from __future__ import annotations

from contextlib import nullcontext

import torch

from samlora.errors import SamloraError


def pick_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise SamloraError("--device cuda was asked for but no CUDA GPU is visible; use --device auto or cpu")
    return torch.device(name)


def autocast_for(device: torch.device, precision: str):
    """An autocast context for ``precision`` (no, bf16, fp16) on ``device``."""
    if precision == "no":
        return nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)
