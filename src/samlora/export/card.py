"""The model card (``README.md``) of an ONNX export, through the writer of every samlora card (:mod:`samlora.lora.card`)."""

from __future__ import annotations

from typing import Any

from samlora.lora.card import model_card, preprocessing_text


def _graph_table(description: dict[str, Any]) -> str:
    lines = ["| precision | graph | file | inputs | outputs |", "|---|---|---|---|---|"]
    for precision, graphs in description["graphs"].items():
        for key, graph in graphs.items():
            ins = ", ".join(f"`{i['name']}` {i['shape']}" for i in graph["inputs"])
            outs = ", ".join(f"`{o['name']}` {o['shape']}" for o in graph["outputs"])
            lines.append(f"| {precision} | {key} | `{graph['file']}` | {ins} | {outs} |")
    return "\n".join(lines)


def _verification(description: dict[str, Any]) -> str:
    checks = description.get("verification") or {}
    if not checks:
        return "Not verified (exported with --no-verify)."
    lines = [
        "onnxruntime (CPU) against PyTorch on a sample image and sample prompts "
        f"({', '.join(next(iter(checks.values()))['cases'])}); differences are relative to max(1, max |PyTorch value|).",
        "",
        "| precision | encoder | mask logits | IoU scores | mask pixels agreeing | tolerance | result |",
        "|---|---|---|---|---|---|---|",
    ]
    fmt = lambda v: "-" if v is None else f"{v:.2e}"  # noqa: E731
    for precision, f in checks.items():
        agree = "-" if f.get("mask_agreement") is None else f"{100 * f['mask_agreement']:.3f} %"
        tol = f"{f['tolerance']['logits']:g} / {100 * f['tolerance']['agreement']:g} %"
        lines.append(
            f"| {precision} | {fmt(f.get('encoder_max_rel_diff'))} | {fmt(f.get('logits_max_rel_diff'))} | "
            f"{fmt(f.get('iou_max_rel_diff'))} | {agree} | {tol} | {'passed' if f['passed'] else 'FAILED'} |"
        )
    return "\n".join(lines)


def onnx_card(meta: dict[str, Any], description: dict[str, Any]) -> str:
    """Markdown card of an export folder: the adapter's story, the graphs, how to run them, the verification."""
    family = description["family"]
    merged = (
        f"with the adapter `{meta['merged_from'].rstrip('/').split('/')[-1]}` merged into the weights"
        if meta.get("merged_from")
        else "of the model as loaded"
    )
    sections = {
        "Export": f"ONNX graphs written by `samlora export onnx` {merged} "
        f"(opset {description['opset']}, {description['exporter']} exporter).",
        "Graphs": _graph_table(description),
        "Preprocessing": preprocessing_text(description["preprocessing"]),
        "Verification": _verification(description),
    }
    if description.get("not_exported"):
        sections["Not exported"] = (
            f"Only the vision encoder of this {family} model is exported (the per-image cost). Not exported: "
            f"{', '.join(description['not_exported'])}, so text prompts cannot run from this folder alone: run them "
            "with `samlora predict --model ... --prompt TEXT` in PyTorch."
        )
        run = 'Run the encoder with onnxruntime (`onnxruntime.InferenceSession("<graph>.onnx")`), as `export.json` says.'
    else:
        run = (
            "`samlora predict photo.jpg --onnx THIS_FOLDER --box X1 Y1 X2 Y2` runs it on onnxruntime with the "
            "prompts, post-processing and outputs of `samlora predict`. Elsewhere, follow `export.json`: "
            "preprocess as its `preprocessing` says, run `image_encoder` once per image, then `prompt_decoder` "
            "(or `prompt_decoder_multimask`) for any number of prompts with the token convention under `prompts`."
        )
    return model_card(meta, kind="onnx", sections=sections, load=run)
