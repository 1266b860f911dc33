"""``samlora data check``: every problem of a data set, before a long run starts."""

from __future__ import annotations

from typing import Any

from jsonargparse import ArgumentParser

from .registry import add_config_arguments, command, handles, resolve_config


@command("data", help="Data set tools.")
def data_parser() -> ArgumentParser:
    return ArgumentParser(description="Data set tools.")


@command("data", "check", help="Check a data set: summary and every problem (exit 1 on errors).")
def check_parser() -> ArgumentParser:
    parser = ArgumentParser(
        description="Read every split of a data set (COCO export or images/ + masks/ folders), decode every image "
        "and object, print a summary and every problem with its file and record. Exit status 1 when there are "
        "errors; warnings do not fail."
    )
    parser.add_argument(
        "root", nargs="?", default=None, help="Data folder or COCO json (default: data.root)."
    )
    parser.add_argument(
        "--splits", nargs="+", default=None, help="Only these splits (default: every split found)."
    )
    parser.add_argument(
        "--quick", action="store_true", help="Do not decode images and masks (file listing checks only)."
    )
    parser.add_argument("--workers", type=int, default=4, help="Threads that decode files.")
    add_config_arguments(parser, sections=("data",))
    return parser


@handles("data", "check")
def run_check(args: dict[str, Any]) -> int:
    from samlora.data.check import check_root
    from samlora.tasks.common import mask_options

    cfg = resolve_config(args, sections=("data",))
    root = args.get("root") or cfg.data.root
    if not root:
        from samlora.errors import DataError

        raise DataError("pass the data folder: samlora data check DATA")
    reports = check_root(
        root, cfg.data.format, splits=args.get("splits"), deep=not args.get("quick"), workers=args["workers"],
        max_pixels=cfg.data.max_pixels, **mask_options(cfg),
    )  # fmt: skip
    print("\n\n".join(r.format() for r in reports))
    errors = sum(len(r.errors) for r in reports)
    warnings = sum(len(r.warnings) for r in reports)
    print(f"\n{len(reports)} split(s): {errors} error(s), {warnings} warning(s)")
    return 1 if errors else 0
