"""``samlora serve``: one base model and its adapters behind an HTTP API and an interactive page."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from jsonargparse import ArgumentParser

from samlora.errors import SamloraError

from .registry import command, handles

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@command("serve", help="Serve a model and its adapters over HTTP, with a page to click on images.")
def serve_parser() -> ArgumentParser:
    p = ArgumentParser(
        description="Start an HTTP server over one base model and any number of adapters: JSON API "
        "(/predict, /models, /health, docs at /docs) and an interactive page at /. Needs the 'serve' "
        "extra: pip install 'samlora[serve]'. Stop it with Ctrl-C (SIGINT) or SIGTERM."
    )
    p.add_argument("--model", default=None, help="Base model: hub id, folder or preset (default: the one the first adapter records).")  # fmt: skip
    p.add_argument(
        "--adapter",
        action="append",
        default=None,
        help="An adapter as NAME=DIR or DIR (named after its run folder); DIR is an adapter folder or a "
        "run folder, whose best/ is used. Repeatable; the first is the default of requests.",
    )
    p.add_argument("--host", default="127.0.0.1", help="Address to listen on (default 127.0.0.1: this machine only; 0.0.0.0 opens it to the network).")  # fmt: skip
    p.add_argument(
        "--port", type=int, default=8000, help="Port to listen on (0: any free port, printed at start)."
    )
    p.add_argument(
        "--device", default="auto", choices=["auto", "cpu", "cuda", "mps"], help="Where to run the model."
    )
    p.add_argument("--precision", default="no", choices=["no", "fp32", "bf16", "fp16"], help="Autocast precision (no = fp32).")  # fmt: skip
    p.add_argument(
        "--resolution",
        type=int,
        default=0,
        help="Shrink images whose longest side exceeds this before encoding (0: never); masks stay at the original size.",
    )
    p.add_argument(
        "--token",
        default=None,
        help="Require 'Authorization: Bearer TOKEN' on /models and /predict (also read from $SAMLORA_TOKEN). "
        "The page asks for it.",
    )
    p.add_argument("--max-pixels", type=int, default=40_000_000, help="Refuse images with more pixels (width x height) than this (413).")  # fmt: skip
    p.add_argument("--max-upload-mb", type=float, default=32.0, help="Refuse request bodies larger than this many MiB (413).")  # fmt: skip
    p.add_argument("--max-prompts", type=int, default=64, help="At most this many boxes, point sets, points per object or text prompts per request.")  # fmt: skip
    p.add_argument("--cache-size", type=int, default=16, help="Image embeddings kept, one per (image, adapter), least recently used dropped first.")  # fmt: skip
    return p


def parse_adapters(values: list[str]) -> dict[str, Path]:
    """``NAME=DIR`` / ``DIR`` flags -> name -> adapter folder (``DIR/best`` for a run folder)."""
    from samlora.evaluate.report import model_label
    from samlora.predict.predictor import VANILLA, resolve_adapter

    out: dict[str, Path] = {}
    for value in values:
        name, sep, folder = value.partition("=")
        if not sep or not NAME.match(name) or Path(value).exists():
            name, folder = "", value
        folder_path = resolve_adapter(folder)
        name = name or model_label(folder_path)
        if name == VANILLA:
            raise SamloraError(
                f"'{VANILLA}' names the base model; give the adapter another name: --adapter NAME={folder}"
            )
        if name in out:
            raise SamloraError(f"two adapters are named '{name}'; name them: --adapter {name}2={folder}")
        out[name] = folder_path
    return out


@handles("serve")
def run_serve(args: dict[str, Any]) -> int:
    try:
        import fastapi  # noqa: F401
        import fastapi_offline  # noqa: F401
        import python_multipart  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as err:
        raise SamloraError(
            f"samlora serve needs the optional serve dependencies ({err.name} is not installed): "
            "pip install 'samlora[serve]'"
        ) from None
    from samlora.predict.predictor import Predictor
    from samlora.serve.app import build_app
    from samlora.serve.engine import Engine
    from samlora.serve.server import bind, run, url_of
    from samlora.serve.settings import ServeSettings

    adapters = parse_adapters(args.get("adapter") or [])
    if not args.get("model") and not adapters:
        raise SamloraError("pass --model NAME and/or --adapter DIR")
    for flag in ("max_pixels", "max_upload_mb", "max_prompts", "cache_size"):
        if args[flag] <= 0:
            raise SamloraError(f"--{flag.replace('_', '-')} must be positive, got {args[flag]}")
    settings = ServeSettings(
        host=args["host"], port=args["port"], token=args.get("token") or os.environ.get("SAMLORA_TOKEN") or None,
        max_pixels=args["max_pixels"], max_upload_bytes=int(args["max_upload_mb"] * 1024 * 1024),
        max_prompts=args["max_prompts"], cache_size=args["cache_size"],
    )  # fmt: skip
    sock = bind(settings.host, settings.port)  # fail fast on a taken port, before loading the model
    predictor = Predictor(
        args.get("model"), adapters=adapters or None, device=args["device"], precision=args["precision"],
        resolution=args["resolution"],
    )  # fmt: skip
    app = build_app(Engine(predictor, adapters, settings))
    url = url_of(sock)
    names = ", ".join([*adapters, "vanilla"])
    print(f"samlora serve: {predictor.loaded.name} with {names} at {url}/ (API docs: {url}/docs)", flush=True)
    run(app, sock)
    return 0
