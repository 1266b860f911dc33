"""The table of subcommands: each module of ``samlora.cli`` registers its parser and handler here."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from jsonargparse import ArgumentParser, set_parsing_settings

from samlora.config import Config, load_config

set_parsing_settings(docstring_parse_attribute_docstrings=True)

Handler = Callable[[dict[str, Any]], int]
COMMANDS: dict[tuple[str, ...], tuple[Callable[[], ArgumentParser], Handler, str]] = {}


def command(*path: str, help: str) -> Callable[[Callable[[], ArgumentParser]], Callable[[], ArgumentParser]]:
    """Register a subcommand: the decorated function builds its parser; ``handler`` is attached later."""

    def register(build: Callable[[], ArgumentParser]) -> Callable[[], ArgumentParser]:
        COMMANDS[path] = (build, getattr(build, "handler", None), help)
        return build

    return register


def handles(*path: str) -> Callable[[Handler], Handler]:
    """Attach the handler of a registered subcommand."""

    def attach(fn: Handler) -> Handler:
        build, _, help_text = COMMANDS[path]
        COMMANDS[path] = (build, fn, help_text)
        return fn

    return attach


def add_config_arguments(parser: ArgumentParser, sections: tuple[str, ...] | None = None) -> None:
    """``--config FILE`` plus every config key (or those of ``sections``) as ``--section.key``."""
    parser.add_argument("--config", type=str, default=None, help="YAML config file; flags override its keys.")
    if sections is None:
        parser.add_class_arguments(Config, nested_key=None, as_group=True)
    else:
        import typing

        hints = typing.get_type_hints(Config)
        for section in sections:
            parser.add_class_arguments(hints[section], nested_key=section, as_group=True)


def resolve_config(args: dict[str, Any], sections: tuple[str, ...] | None = None) -> Config:
    """YAML file (if any) + explicit flags -> a validated :class:`Config`."""
    names = sections or tuple(k for k in Config.__dataclass_fields__)
    overrides = {k: v for k, v in args.items() if k in names and isinstance(v, dict)}
    return load_config(args.get("config"), overrides)
