"""The model card (``README.md``, the Hugging Face Hub's format) of a deployed model: a merged folder or an ONNX export.

One function writes both: the adapter's story (base model, LoRA settings, metrics
at save time, from its ``samlora.json``) and the preprocessing, plus the sections
the caller adds (how to load it, the graphs and their verification).
"""

from __future__ import annotations

from typing import Any

CARD_FILE = "README.md"


def _front_matter(meta: dict[str, Any], library: str, tags: list[str]) -> str:
    lines = ["---", f"library_name: {library}", "pipeline_tag: mask-generation"]
    base = meta.get("base_model")
    if base and "/" in base and not base.startswith(("/", ".")):  # a hub id, not a local path
        lines.append(f"base_model: {base}")
    lines += ["tags:"] + [f"- {t}" for t in ["samlora", "segment-anything", *tags]] + ["---"]
    return "\n".join(lines)


def _lora_lines(lora: dict[str, Any]) -> list[str]:
    if not lora:
        return ["No adapter: this is the base model as it was loaded."]
    rows = [
        ("variant", lora.get("variant", "lora")),
        ("rank", lora.get("rank")),
        ("alpha", lora.get("alpha")),
        ("dropout", lora.get("dropout")),
        ("components", ", ".join(lora.get("components") or []) or "all"),
        ("target modules", ", ".join(lora.get("target_modules") or []) or "-"),
        ("trained fully", ", ".join(lora.get("train_fully") or []) or "-"),
    ]
    return ["| setting | value |", "|---|---|"] + [f"| {k} | {v} |" for k, v in rows]


def _metric_lines(metrics: dict[str, Any], step: Any) -> list[str]:
    if not metrics:
        return ["No metrics were recorded with the adapter."]
    head = f"At save time (step {step}):" if step is not None else "At save time:"
    rows = [f"| {k} | {v:.4f} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in metrics.items()]
    return [head, "", "| metric | value |", "|---|---|", *rows]


def merged_model_card(
    meta: dict[str, Any],
    *,
    title: str,
    summary: str,
    preprocessing: dict[str, Any],
    sections: dict[str, str] | None = None,
    library: str = "transformers",
    tags: list[str] | None = None,
) -> str:
    """Markdown model card of a deployed model.

    Args:
        meta: the adapter's ``samlora.json`` (``base_model``, ``family``, ``task``,
            ``lora``, ``metrics``, ``step``, ``class_names``), plus ``merged_from``
            (the adapter folder) when an adapter was merged.
        title: the card's heading.
        summary: one paragraph saying what the folder holds.
        preprocessing: ``image_size``, ``resize``, ``mean``, ``std`` of the model's input.
        sections: heading -> Markdown body, appended in order (usage, files, verification).
        library: the hub's ``library_name`` (``transformers``, ``onnx``).
    """
    names = meta.get("class_names") or {}
    resize = (
        "longest side resized to S, padded bottom/right to S x S"
        if preprocessing.get("resize") == "longest_side"
        else "both sides resized to S"
    )
    parts = [
        _front_matter(meta, library, tags or []),
        f"# {title}",
        summary,
        "## Model",
        "\n".join(
            [
                f"- family: `{meta.get('family', '?')}` ({meta.get('task', '?')} prompts)",
                f"- base model: `{meta.get('base_model', '?')}`",
                f"- adapter: `{meta.get('merged_from', 'none (base model)')}`",
                f"- classes: {', '.join(str(v) for v in names.values()) or '-'}",
                f"- written by samlora {meta.get('samlora_version', '?')}",
            ]
        ),
        "## LoRA settings",
        "\n".join(_lora_lines(meta.get("lora") or {})),
        "## Metrics",
        "\n".join(_metric_lines(meta.get("metrics") or {}, meta.get("step"))),
        "## Preprocessing",
        (
            f"RGB uint8 -> {resize} (S = {preprocessing.get('image_size')}, bilinear), scaled to 0..1, "
            f"normalised with mean {list(preprocessing.get('mean', []))} and std {list(preprocessing.get('std', []))}; "
            "prompt coordinates are pixels of the original image scaled by the same factors, and mask logits "
            "are upsampled to S x S, cropped to the resized image and resized to the original size."
        ),
    ]
    for heading, body in (sections or {}).items():
        parts += [f"## {heading}", body.strip()]
    return "\n\n".join(parts) + "\n"


def transformers_usage(model_class: str, processor_class: str, concept: bool) -> str:
    """The card's "Use with transformers" section: load the folder with plain transformers classes."""
    if concept:
        call = (
            'inputs = processor(images=image, text="crack", return_tensors="pt")\noutputs = model(**inputs)\n'
        )
        post = 'results = processor.post_process_instance_segmentation(outputs, target_sizes=inputs["original_sizes"])'
        cli = "--prompt crack"
    else:
        call = (
            'inputs = processor(images=image, input_boxes=[[[x1, y1, x2, y2]]], return_tensors="pt")\n'
            "outputs = model(**inputs, multimask_output=False)\n"
        )
        post = 'masks = processor.post_process_masks(outputs.pred_masks, inputs["original_sizes"])'
        cli = "--box X1 Y1 X2 Y2"
    return f"""```python
from PIL import Image
import transformers

model = transformers.AutoModel.from_pretrained("THIS_FOLDER")          # {model_class}
processor = transformers.AutoProcessor.from_pretrained("THIS_FOLDER")  # {processor_class}
image = Image.open("photo.jpg").convert("RGB")
{call}{post}
```

Or with samlora: `samlora predict photo.jpg --model THIS_FOLDER {cli}`."""
