"""``samlora config``: validate a config file or show the fully resolved one."""

from __future__ import annotations

from typing import Any

import yaml
from jsonargparse import ArgumentParser

from samlora.config import to_dict

from .registry import add_config_arguments, command, handles, resolve_config


@command("config", help="Validate or show configurations.")
def config_parser() -> ArgumentParser:
    return ArgumentParser(description="Validate a config file, or print the fully resolved configuration.")


@command("config", "validate", help="Check a config file; report every problem at once.")
def validate_parser() -> ArgumentParser:
    parser = ArgumentParser(description="Check a YAML config (and overrides); exit 0 when valid.")
    add_config_arguments(parser)
    return parser


@handles("config", "validate")
def run_validate(args: dict[str, Any]) -> int:
    resolve_config(args)
    print(f"{args.get('config') or 'defaults'}: valid")
    return 0


@command("config", "show", help="Print the resolved configuration (defaults + file + flags).")
def show_parser() -> ArgumentParser:
    parser = ArgumentParser(description="Print the resolved configuration as YAML.")
    add_config_arguments(parser)
    return parser


@handles("config", "show")
def run_show(args: dict[str, Any]) -> int:
    print(yaml.safe_dump(to_dict(resolve_config(args)), sort_keys=False), end="")
    return 0
