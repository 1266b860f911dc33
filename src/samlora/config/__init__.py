"""config: the typed configuration tree, read from YAML + overrides and validated.

``schema`` holds every key (dataclasses with defaults and help lines); ``io`` reads YAML and
command-line overrides into a :class:`Config`, reporting every problem at once, and writes the
resolved tree back. The rest of samlora receives a validated :class:`Config`.
"""

from samlora.errors import ConfigError

from .io import (
    config_from_dict,
    config_keys,
    config_presets,
    load_config,
    merge,
    read_yaml,
    save_config,
    to_dict,
)
from .schema import (
    AugmentConfig,
    Config,
    DataConfig,
    EvalConfig,
    LoraSettings,
    LossConfig,
    ModelConfig,
    OutputConfig,
    PromptConfig,
    TrainConfig,
)

__all__ = [
    "AugmentConfig", "Config", "ConfigError", "DataConfig", "EvalConfig", "LoraSettings", "LossConfig",
    "ModelConfig", "OutputConfig", "PromptConfig", "TrainConfig", "config_from_dict", "config_keys",
    "config_presets", "load_config", "merge", "read_yaml", "save_config", "to_dict",
]  # fmt: skip
