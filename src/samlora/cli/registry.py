"""The table of subcommands: each module of ``samlora.cli`` registers its parser and handler here."""

from __future__ import annotations

import sys
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


def resolve_config(
    args: dict[str, Any], sections: tuple[str, ...] | None = None, announce: str = "stdout"
) -> Config:
    """YAML file (if any) + explicit flags -> a validated :class:`Config`.

    A file in the SAM3-LoRA tool's format is read as the samlora config it maps to, which is printed
    on ``announce`` (``stdout`` or ``stderr``) first, so the user sees, and can keep, the samlora spelling.
    """
    names = sections or tuple(k for k in Config.__dataclass_fields__)
    overrides = {k: v for k, v in args.items() if k in names and isinstance(v, dict)}
    path = args.get("config")
    if path:
        from samlora.config import read_yaml
        from samlora.config.sam3_lora import is_sam3_lora

        data = read_yaml(path)
        if is_sam3_lora(data):
            print(migrated_text(path, data), file=getattr(sys, announce), flush=True)
    return load_config(path, overrides)


def migrated_text(path: str, data: dict[str, Any], written: bool = False) -> str:
    """The samlora YAML a SAM3-LoRA config maps to, with a header saying so (``written``: for the file
    ``samlora config migrate`` writes)."""
    import yaml

    from samlora.config.sam3_lora import TOOL, TOOL_MODEL, from_sam3_lora

    mapped, notes = from_sam3_lora(data)
    body = yaml.safe_dump(mapped, sort_keys=False)
    model = f"# model.name {TOOL_MODEL} is the model the tool trains; --model.name picks another\n"
    model = model if mapped["model"].get("name") == TOOL_MODEL else ""
    model += "".join(f"# note: {note}\n" for note in notes)
    if written:
        return (
            f"# samlora config written by `samlora config migrate` from {path} ({TOOL} format)\n{model}{body}"
        )
    return (
        f"# {path} is a {TOOL} config; samlora reads it as this samlora config\n"
        f"# (`samlora config migrate {path}` writes it to a file)\n{model}{body}"
    )
