"""Every numeric config key has a finite, sane range."""

from __future__ import annotations

import pytest

from samlora.config import Config, config_from_dict
from samlora.config.limits import numeric_values
from samlora.errors import ConfigError


def nested(key: str, value: object) -> dict:
    section, leaf = key.split(".")
    return {section: {leaf: value}}


@pytest.mark.parametrize("key", sorted(numeric_values(Config())))
def test_every_numeric_key_refuses_huge_and_non_finite_values(key: str) -> None:
    default = numeric_values(Config())[key]
    bad = [10**13, -(10**13)] + ([float("inf"), float("nan")] if isinstance(default, float) else [])
    for value in bad:
        with pytest.raises(ConfigError, match=f"'{key}'"):
            config_from_dict(nested(key, value))
    config_from_dict(nested(key, default))  # the default is in range
