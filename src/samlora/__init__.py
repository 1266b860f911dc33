"""samlora: fine-tune Segment Anything models with LoRA, evaluate them, and serve the adapters.

The public Python API (imported lazily, so ``import samlora`` and the CLI's ``--help`` stay fast)::

    from samlora import Predictor, PostProcess, load_image, load_config, train

The flow, one folder per step: config -> data -> models -> lora -> tasks (promptable | concept)
-> training -> evaluate -> predict; ``cli`` and ``demo`` sit on top.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_API = {
    "Config": "samlora.config",
    "load_config": "samlora.config",
    "load_image": "samlora.data.images",
    "PostProcess": "samlora.tasks.postprocess",
    "Predictor": "samlora.predict.predictor",
    "Prediction": "samlora.predict.predictor",
    "SamloraError": "samlora.errors",
    "train": "samlora.training.trainer",
}
__all__ = [
    "Config", "PostProcess", "Prediction", "Predictor", "SamloraError", "__version__", "load_config",
    "load_image", "train",
]  # fmt: skip

if TYPE_CHECKING:
    from samlora.config import Config, load_config
    from samlora.data.images import load_image
    from samlora.errors import SamloraError
    from samlora.predict.predictor import Prediction, Predictor
    from samlora.tasks.postprocess import PostProcess
    from samlora.training.trainer import train


def __getattr__(name: str) -> Any:
    """Import a public name on first use (``samlora.Predictor`` loads torch, ``samlora.__version__`` does not)."""
    if name in _API:
        value = getattr(importlib.import_module(_API[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'samlora' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))
