"""``samlora``: parse the command line, run the chosen subcommand, turn user errors into messages.

Config-bearing commands take ``--config FILE.yaml`` and any key of the typed
config tree as ``--section.key value`` (generated from the dataclasses in
:mod:`samlora.config` by jsonargparse, with their docstrings as help). User
errors print one clear message and exit with status 2, never a traceback.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from jsonargparse import ArgumentParser, Namespace

from samlora import __version__
from samlora.config import Config, ConfigError, config_keys, load_config
from samlora.errors import SamloraError

from .registry import COMMANDS

log = logging.getLogger("samlora")


def quiet_libraries() -> None:
    """Keep transformers, the hub and its HTTP client to errors, without importing them (``--help`` stays
    light): their environment switches are read on import, so a handler that imports them later obeys."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    for name in ("httpx", "httpx2", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)
    if "transformers" in sys.modules:  # already imported (the Python API, tests): switch it directly
        import transformers

        transformers.logging.disable_progress_bar()
        transformers.logging.set_verbosity_error()


def check_unknown_flags(argv: list[str]) -> None:
    """Reject ``--section.key`` flags that are not config keys, naming the closest valid key."""
    from samlora.config.sam3_lora import FOREIGN_SECTIONS

    keys = config_keys()
    sections = {*Config.__dataclass_fields__, *FOREIGN_SECTIONS}
    bad = []
    for token in argv:
        if token.startswith("--") and "." in token:
            flag = token[2:].split("=", 1)[0].rstrip("+")
            if flag.split(".", 1)[0] in sections and flag not in keys:
                bad.append(flag)
    if bad:
        from samlora.config.io import _suggest

        raise ConfigError([f"unknown option '--{b}'{_suggest(b, keys)}" for b in bad], "the command line")


def command_line_overrides(argv: list[str]) -> dict[str, Any]:
    """``--section.key value`` / ``--section.key=value`` flags of ``argv`` as nested overrides,
    each value read as YAML (the way a config file would give it)."""
    from samlora.io.readers import parse_yaml

    overrides: dict[str, Any] = {}
    sections = set(Config.__dataclass_fields__)
    for i, token in enumerate(argv):
        if not token.startswith("--") or "." not in token:
            continue
        flag, has_value, value = token[2:].partition("=")
        section, _, key = flag.partition(".")
        if section not in sections or not key:
            continue
        if not has_value:
            if i + 1 >= len(argv) or argv[i + 1].startswith("--"):
                continue
            value = argv[i + 1]
        # YAML with the readers' depth and alias limits; a value that is not YAML stays a string
        parsed = parse_yaml(value, f"--{flag}", lambda m: ConfigError([m], "the command line"), lenient=True)
        node = overrides.setdefault(section, {})
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = parsed
    return overrides


def config_problems(argv: list[str]) -> ConfigError | None:
    """Every problem of the config file and the config flags of ``argv`` at once (the parser stops
    at the first bad flag), or ``None`` when they validate."""
    path = None
    for i, token in enumerate(argv):
        if token == "--config" and i + 1 < len(argv):
            path = argv[i + 1]
        elif token.startswith("--config="):
            path = token.split("=", 1)[1]
    try:
        load_config(path, command_line_overrides(argv))
    except ConfigError as err:
        return ConfigError(err.problems, f"{path} and the command line" if path else "the command line")
    return None


def _parser_error(err: Exception) -> ConfigError:
    message = str(err).strip()
    if "<class 'list'>" in message:
        message += " (a list value takes brackets: --lora.components '[vision_encoder, mask_decoder]')"
    return ConfigError([message], "the command line")


def build_parser() -> ArgumentParser:
    """The whole ``samlora`` parser, built from :data:`COMMANDS`."""
    from . import adapters, config, data, demo, eval, export, info, predict, serve, train  # noqa: F401  (registers them)

    parser = ArgumentParser(
        prog="samlora",
        description="Fine-tune Segment Anything models (SAM, SAM 2, SAM 3) with LoRA, evaluate and serve them.",
        exit_on_error=False,
        version=f"samlora {__version__}",
    )
    groups: dict[tuple[str, ...], Any] = {(): parser.add_subcommands(dest="command", required=True)}
    for path in sorted(COMMANDS, key=len):
        build, _, help_text = COMMANDS[path]
        sub_parser = build()
        groups[path[:-1]].add_subcommand(path[-1], sub_parser, help=help_text)
        if any(len(p) > len(path) and p[: len(path)] == path for p in COMMANDS):
            groups[path] = sub_parser.add_subcommands(dest="subcommand", required=True)
    return parser


def _selected(ns: dict[str, Any]) -> tuple[tuple[str, ...], dict[str, Any]]:
    path: list[str] = []
    node = ns
    while True:
        name = node.get("command") or node.get("subcommand")
        if not name:
            return tuple(path), node
        path.append(name)
        node = node.get(name) or {}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``samlora`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(
        level=os.environ.get("SAMLORA_LOG", "INFO"),
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    quiet_libraries()
    try:
        parser = build_parser()
        check_unknown_flags(argv)
        command_line_overrides(
            argv
        )  # the values' YAML depth and alias limits, before jsonargparse reads them
        try:
            full: Namespace = parser.parse_args(argv)
            explicit: Namespace = parser.parse_args(argv, defaults=False)
        except Exception as err:  # jsonargparse reports argparse errors as exceptions
            if isinstance(err, SystemExit):
                raise
            raise config_problems(argv) or _parser_error(err) from err
        path, args = _selected(full.as_dict())
        _, given = _selected(explicit.as_dict())
        # config sections (nested dicts) carry only what the user gave, so that a YAML fills the rest;
        # a plain option that shares a section's name (``demo --output DIR``) keeps its default
        sections = set(Config.__dataclass_fields__)
        args = {k: v for k, v in args.items() if k not in sections or not isinstance(v, dict)}
        args.update({k: v for k, v in given.items() if k in sections and isinstance(v, dict)})
        handler = COMMANDS[path][1]
        return int(handler(args) or 0)
    except SamloraError as err:
        print(f"samlora: error: {err}", file=sys.stderr)
        return 2
    except (OSError, MemoryError) as err:  # environment faults: disk full, read-only, permissions, memory
        from samlora.io.disk import describe, fix_for

        print(f"samlora: error: {describe(err)}; {fix_for(err)}", file=sys.stderr)
        return 2
    except RuntimeError as err:
        if type(err).__name__ != "OutOfMemoryError" and "out of memory" not in str(err).lower():
            raise
        print(
            f"samlora: error: out of memory on the device ({str(err).splitlines()[0][:200]}); use a smaller "
            "batch (train.batch_size / --batch-size), train.precision bf16, model.gradient_checkpointing true, "
            "or a smaller --resolution",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        print("samlora: interrupted", file=sys.stderr)
        return 130
