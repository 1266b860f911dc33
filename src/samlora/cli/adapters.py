"""``samlora adapters``: inspect, merge and export adapters."""

from __future__ import annotations

import json
from typing import Any

from jsonargparse import ArgumentParser

from .registry import command, handles


@command("adapters", help="Inspect adapters, or merge one into its base model.")
def adapters_parser() -> ArgumentParser:
    return ArgumentParser(description="Inspect adapters, or merge one into its base model for deployment.")


@command("adapters", "info", help="Print an adapter's samlora.json (base model, LoRA settings, metrics).")
def adapters_info_parser() -> ArgumentParser:
    parser = ArgumentParser(description="Print what an adapter folder holds.")
    parser.add_argument("adapter", help="Adapter folder (e.g. RUN/best).")
    return parser


@handles("adapters", "info")
def run_adapters_info(args: dict[str, Any]) -> int:
    from samlora.lora.adapters import META_FILE, read_adapter

    meta = read_adapter(args["adapter"])
    print(json.dumps(meta, indent=2) if meta else f"plain PEFT adapter (no {META_FILE})")
    return 0


@command(
    "adapters", "merge", help="Merge an adapter into its base and write a full transformers model folder."
)
def merge_parser() -> ArgumentParser:
    parser = ArgumentParser(
        description="Merge an adapter into the base weights; the output loads with from_pretrained."
    )
    parser.add_argument("adapter", help="Adapter folder (e.g. RUN/best).")
    parser.add_argument("--output", required=True, help="Folder to write the merged model into.")
    parser.add_argument(
        "--model", default=None, help="Base model (default: the one recorded in samlora.json)."
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="Replace an --output folder holding an earlier merge."
    )
    return parser


@handles("adapters", "merge")
def run_merge(args: dict[str, Any]) -> int:
    from pathlib import Path

    from samlora.io.disk import check_writable
    from samlora.lora.adapters import export_merged

    check_writable(Path(args["output"]).resolve().parent, "the folder of --output")  # before the model loads
    out = export_merged(
        args["adapter"], args["output"], model_name=args.get("model"), overwrite=bool(args.get("overwrite"))
    )
    print(f"merged model written to {out}")
    return 0
