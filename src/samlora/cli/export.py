"""``samlora export onnx``: the adapted model as verified ONNX graphs (onnx/onnxruntime imported in the handler)."""

from __future__ import annotations

from typing import Any

from jsonargparse import ArgumentParser

from .registry import command, handles


@command("export", help="Export a model (+ adapter) for deployment outside samlora.")
def export_parser() -> ArgumentParser:
    return ArgumentParser(description="Export a model, with its adapter merged in, for other runtimes.")


@command("export", "onnx", help="Export to ONNX (image encoder + prompt decoder), verified with onnxruntime.")
def onnx_parser() -> ArgumentParser:
    p = ArgumentParser(
        description="Merge the adapter and export the image encoder and the prompt encoder + mask decoder as ONNX "
        "graphs (dynamic numbers of prompts and points, optional mask input), with export.json describing inputs, "
        "outputs and preprocessing, and a model card; then check them with onnxruntime against PyTorch. "
        "Needs pip install 'samlora[export]'."
    )
    p.add_argument(
        "source",
        help="Adapter folder, run folder (its best/), merged folder, or a base model (folder, hub id, preset).",
    )
    p.add_argument("--output", required=True, help="Folder to write the export into (must be new or empty).")
    p.add_argument(
        "--model", default=None, help="Base model of the adapter (default: the one samlora.json records)."
    )
    p.add_argument(
        "--overwrite", action="store_true", help="Replace an --output folder holding an earlier export."
    )
    p.add_argument(
        "--fp16", action="store_true", help="Also write float16 graphs (*_fp16.onnx), verified on their own."
    )
    p.add_argument("--exporter", default="torchscript", choices=["torchscript", "dynamo"],
                   help="torch's ONNX exporter: torchscript (fast) or dynamo (torch.export; needs onnxscript).")  # fmt: skip
    p.add_argument("--opset", type=int, default=18, help="ONNX opset version.")
    p.add_argument("--no-verify", action="store_true", help="Skip the onnxruntime vs PyTorch check.")
    p.add_argument("--tolerance", type=float, default=1e-3,
                   help="Max |ONNX - PyTorch| of logits, IoU and features, relative to max(1, max |value|).")  # fmt: skip
    p.add_argument("--min-agreement", type=float, default=0.999,
                   help="Min fraction of low-resolution mask pixels on which ONNX and PyTorch agree.")  # fmt: skip
    p.add_argument("--fp16-tolerance", type=float, default=5e-2, help="--tolerance of the fp16 graphs.")
    p.add_argument(
        "--fp16-min-agreement", type=float, default=0.99, help="--min-agreement of the fp16 graphs."
    )
    return p


@handles("export", "onnx")
def run_export_onnx(args: dict[str, Any]) -> int:
    from samlora.export.onnx import export_onnx
    from samlora.export.verify import Tolerance

    description = export_onnx(
        args["source"],
        args["output"],
        model_name=args.get("model"),
        overwrite=bool(args.get("overwrite")),
        fp16=bool(args.get("fp16")),
        exporter=args["exporter"],
        opset=args["opset"],
        verify=not args.get("no_verify"),
        tolerance=Tolerance(args["tolerance"], args["min_agreement"]),
        fp16_tolerance=Tolerance(args["fp16_tolerance"], args["fp16_min_agreement"]),
    )
    for precision, graphs in description["graphs"].items():
        print(f"{precision}: " + ", ".join(g["file"] for g in graphs.values()))
    if description["not_exported"]:
        print(f"not exported ({description['family']}): {', '.join(description['not_exported'])}")
    for precision, f in description["verification"].items():
        parts = [f"encoder {f['encoder_max_rel_diff']:.2e}"]
        if f.get("logits_max_rel_diff") is not None:
            parts += [f"logits {f['logits_max_rel_diff']:.2e}", f"IoU {f['iou_max_rel_diff']:.2e}"]
            parts.append(f"mask pixels agreeing {100 * f['mask_agreement']:.3f} %")
        print(f"verified {precision} (max relative difference): " + ", ".join(parts) + " - passed")
    if not description["verification"]:
        print("not verified (--no-verify)")
    print(f"ONNX export written to {args['output']}")
    return 0
