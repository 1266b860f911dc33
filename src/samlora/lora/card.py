"""Model cards: the ``README.md`` of every folder samlora saves, in the Hugging Face hub's format.

A card is YAML front matter (``library_name``, ``base_model`` when it is a hub id, ``tags``,
``pipeline_tag``) followed by Markdown: the base model (a hub id or a preset name, never a local
path), family and task, the LoRA settings and trainable parameters, the data, the training
settings, the metrics at save time, the evaluation prompt, the command and config that reproduce
it, and how to load it. Everything comes from ``samlora.json`` (see
:func:`samlora.lora.adapters.adapter_metadata`, whose ``training`` entry :func:`run_facts` fills),
so a card can be rewritten from the folder alone: ``write_model_card(folder, meta)``.

``kind`` says what the folder holds: ``adapter`` (a PEFT adapter), ``merged`` (a full
transformers folder with the adapter merged in) or ``onnx`` (exported graphs).
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any, Literal

import yaml

from samlora.config import Config, to_dict
from samlora.models.presets import preset_names

CARD_FILE = "README.md"
Kind = Literal["adapter", "merged", "onnx"]
_HUB_CACHE = re.compile(r"^models--([^/]+?)--(.+)$")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def public_model_name(name: str) -> tuple[str, bool]:
    """``(name to publish, is a hub id)`` for a base model as the user named it.

    A hub id or a preset name stays as it is; a folder inside the hub cache becomes its hub id
    (``.../models--facebook--sam-vit-base/snapshots/<sha>`` -> ``facebook/sam-vit-base``); any other
    local folder becomes its folder name only: a card never names a path of this machine.
    """
    if name in preset_names():
        return name, False
    path = Path(name).expanduser()
    looks_local = path.is_absolute() or name.startswith((".", "~")) or path.exists()
    if not looks_local and _HUB_ID.match(name):
        return name, True
    for part in reversed(path.parts):
        match = _HUB_CACHE.match(part)
        if match:
            return f"{match.group(1)}/{match.group(2)}", True
    return path.name or name, False


def run_facts(
    cfg: Config,
    trainable: int,
    total: int,
    train_images: int,
    valid_images: int,
    categories: dict[int, str],
) -> dict[str, Any]:
    """What a training run tells its cards: data, settings, parameter counts and the reproducing config.

    Paths of this machine are left out: the data root becomes its folder name, the base model its
    :func:`public_model_name`, the output folder a placeholder.
    """
    config = copy.deepcopy(to_dict(cfg))
    data_name = Path(cfg.data.root).name if cfg.data.root else ""
    config["model"]["name"] = public_model_name(cfg.model.name)[0]
    config["data"]["root"] = f"<{data_name or 'data'}>"
    config["output"]["dir"] = "<run folder>"
    config["output"]["overwrite"] = False
    return {
        "data": {
            "name": data_name,
            "format": cfg.data.format,
            "train_split": cfg.data.train_split,
            "train_images": train_images,
            "valid_split": cfg.data.valid_split,
            "valid_images": valid_images,
            "categories": {str(k): v for k, v in categories.items()},
        },
        "parameters": {"trainable": trainable, "total": total},
        "eval_prompt": cfg.eval.prompt,
        "config": config,
    }


def _front_matter(meta: dict[str, Any], kind: Kind) -> str:
    base, on_hub = public_model_name(str(meta.get("base_model", "")))
    family = meta.get("family", "")
    task = meta.get("task", "promptable")
    header: dict[str, Any] = {}
    header["library_name"] = {"adapter": "peft", "merged": "transformers", "onnx": "onnx"}[kind]
    if on_hub:
        header["base_model"] = base
    header["pipeline_tag"] = "mask-generation" if task == "promptable" else "image-segmentation"
    header["tags"] = [
        "samlora",
        "segment-anything",
        family,
        "lora",
        *({"adapter": ["peft"], "onnx": ["onnx"]}.get(kind, [])),
    ]
    return "---\n" + yaml.safe_dump(header, sort_keys=False) + "---\n"


def _table(rows: list[tuple[str, Any]]) -> str:
    return "\n".join(["| | |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows)])


def _lora_rows(meta: dict[str, Any], adapter_config: dict[str, Any]) -> list[tuple[str, Any]]:
    lora = meta.get("lora", {})
    variant = lora.get("variant", "lora")
    targets = adapter_config.get("target_modules")
    n_targets = len(targets) if isinstance(targets, list) else None
    rows = [
        ("variant", {"lora": "LoRA", "rslora": "rank-stabilised LoRA", "dora": "DoRA"}.get(variant, variant)),
        ("rank / alpha / dropout", f"{lora.get('rank')} / {lora.get('alpha')} / {lora.get('dropout')}"),
        ("components", ", ".join(lora.get("components", [])) or "none"),
        (
            "target layers",
            ", ".join(lora.get("target_modules", [])) + (f" ({n_targets} modules)" if n_targets else ""),
        ),
        ("trained fully (saved with the adapter)", ", ".join(lora.get("train_fully", [])) or "none"),
    ]
    params = meta.get("training", {}).get("parameters")
    if params:
        share = 100 * params["trainable"] / max(params["total"], 1)
        rows.append(
            (
                "trainable parameters",
                f"{params['trainable']:,} ({share:.1f} % of the {params['total']:,}-parameter base model)",
            )
        )
    return rows


PROMPTABLE_TERMS = ("dice", "focal", "boundary", "iou")
"""Loss weights of the promptable loss, as the card lists them (concept: the ``set_*`` weights)."""


def _loss_terms(loss: dict[str, Any], task: str) -> str:
    keys = PROMPTABLE_TERMS if task == "promptable" else [k for k in loss if k.startswith("set_")]
    weights = {
        k: loss[k] for k in keys if isinstance(loss.get(k), (int, float)) and not isinstance(loss[k], bool)
    }
    return ", ".join(f"{k} {v:g}" for k, v in weights.items() if v)


def _number(key: str, value: Any) -> str:
    if isinstance(value, float) and key == "objects":
        return f"{value:.0f}"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _load_section(meta: dict[str, Any], base: str, kind: Kind) -> str:
    family = meta.get("family", "")
    if kind == "merged":
        return (
            "```python\nfrom samlora import Predictor\n\n"
            'p = Predictor("path/to/this/folder")  # a full model folder: no adapter to load\n```\n\n'
            'or with plain transformers: `transformers.AutoModel.from_pretrained("path/to/this/folder")`.'
        )
    if kind == "onnx":
        return (
            'The graphs in this folder run with onnxruntime (`onnxruntime.InferenceSession("<graph>.onnx")`); '
            "see samlora's README, *Export*, for their inputs and outputs."
        )
    classes = {
        "sam": "SamModel",
        "sam_hq": "SamHQModel",
        "sam2": "Sam2Model",
        "sam3_tracker": "Sam3TrackerModel",
        "sam3": "Sam3Model",
    }
    model_class = classes.get(family, "AutoModel")
    base_code = (
        f'base = transformers.{model_class}.from_pretrained("{base}")'
        if public_model_name(base)[1]
        else f"base = load_model(\"{base}\").model  # samlora's loader (a preset, or the base model's folder)"
    )
    extra = "from samlora.models.loading import load_model\n" if "load_model" in base_code else ""
    return (
        f"With plain PEFT:\n\n```python\nimport peft\nimport transformers\n{extra}\n{base_code}\n"
        'model = peft.PeftModel.from_pretrained(base, "path/to/this/folder")\n```\n\n'
        f"With samlora (loads the base model recorded in `samlora.json`, prompts in pixels of the image):\n\n"
        "```python\nfrom samlora import Predictor\n\n"
        'p = Predictor(adapters="path/to/this/folder")\n'
        + (
            "p.set_image(image)\nout = p.predict(boxes=[[10, 20, 200, 220]])  # out.masks: K x H x W bool\n```\n\n"
            if meta.get("task", "promptable") == "promptable"
            else 'out = p.predict(image, text=["crack"])  # every instance of each text prompt\n```\n\n'
        )
        + "or from the command line: `samlora predict photos/ --adapter path/to/this/folder --output preds/`."
    )


def model_card(
    meta: dict[str, Any],
    adapter_config: dict[str, Any] | None = None,
    kind: Kind = "adapter",
    sections: dict[str, str] | None = None,
    load: str | None = None,
) -> str:
    """The card (front matter + Markdown) of a saved folder described by ``meta`` (``samlora.json``).

    ``sections`` (heading -> Markdown) are added before "How to load"; ``load`` replaces that section's
    body (a merged folder's or an export's own usage).
    """
    base, on_hub = public_model_name(str(meta.get("base_model", "")))
    training = meta.get("training", {})
    family, task = meta.get("family", "?"), meta.get("task", "promptable")
    what = {
        "adapter": "A LoRA adapter",
        "merged": "A model with a LoRA adapter merged in",
        "onnx": "ONNX graphs",
    }[kind]
    source = "hub model" if on_hub else ("samlora preset" if base in preset_names() else "local model folder")
    lines = [
        _front_matter(meta, kind),
        f"# {training.get('data', {}).get('name') or 'samlora'} {kind} for {base}",
        "",
        f"{what} for `{base}` ({source}; family `{family}`, task `{task}`: "
        + (
            "a box, points or a mask give one mask"
            if task == "promptable"
            else "a text prompt gives every instance"
        )
        + f"), trained with samlora {meta.get('samlora_version', '')}.",
        "",
        "## Model",
        "",
        _table(
            [
                ("base model", f"`{base}`"),
                ("family / task", f"{family} / {task}"),
                ("input", f"{meta.get('image_size')} px, {meta.get('resize')}"),
                ("classes", ", ".join(meta.get("class_names", {}).values()) or "one object class"),
            ]
        ),
        "",
        "## LoRA",
        "",
        _table(_lora_rows(meta, adapter_config or {}))
        if meta.get("lora")
        else "No adapter: this is the base model as it was loaded.",
    ]
    data = training.get("data")
    if data:
        cats = ", ".join(data.get("categories", {}).values()) or "binary objects"
        lines += [
            "",
            "## Data",
            "",
            _table(
                [
                    ("data set", f"`{data['name']}` ({data['format']})"),
                    (f"training split `{data['train_split']}`", f"{data['train_images']} images"),
                    (f"validation split `{data['valid_split']}`", f"{data['valid_images']} images"),
                    ("categories", cats),
                ]
            ),
        ]
    config = training.get("config")
    if config:
        tr, pr = config["train"], config["prompts"]
        steps = f"{tr['max_steps']} steps" if tr["max_steps"] else f"{tr['epochs']} epochs"
        lines += [
            "",
            "## Training",
            "",
            _table(
                [
                    ("length", steps),
                    ("batch", f"{tr['batch_size']} x {tr['grad_accum']} accumulation"),
                    (
                        "optimiser",
                        f"AdamW, lr {tr['lr']}, weight decay {tr['weight_decay']}, {tr['schedule']} ({tr['warmup_steps']} warm-up)",
                    ),
                    ("precision / seed", f"{tr['precision']} / {tr['seed']}"),
                    ("prompts", ", ".join(pr.get("modes", [])) or "text"),
                    ("loss", _loss_terms(config["loss"], meta.get("task", "promptable"))),
                ]
            ),
        ]
    metrics = meta.get("metrics") or {}
    lines += ["", "## Metrics at save time", ""]
    if metrics:
        prompt = training.get("eval_prompt")
        lines += [
            f"Validation at step {meta.get('step')}"
            + (f", prompt `{prompt}` (`eval.prompt`)" if prompt else "")
            + ":",
            "",
            _table([(k, _number(k, v)) for k, v in metrics.items()]),
        ]
    else:
        lines.append(
            "No metrics were recorded with this model."
            if meta.get("step") is None
            else f"No validation split: saved at step {meta.get('step')} without metrics."
        )
    if config:
        lines += [
            "",
            "## Reproduce",
            "",
            f"Save this config (the run's resolved `config.yaml`, paths left out) as `config.yaml` and run "
            f"`samlora train --config config.yaml --data.root PATH/TO/{data['name'] if data else 'DATA'} --output.dir RUN`:",
            "",
            "```yaml",
            yaml.safe_dump(config, sort_keys=False).rstrip(),
            "```",
        ]
    for heading, body in (sections or {}).items():
        lines += ["", f"## {heading}", "", body.strip()]
    lines += ["", "## How to load", "", load or _load_section(meta, base, kind), ""]
    return "\n".join(lines)


def write_model_card(folder: str | Path, meta: dict[str, Any], kind: Kind = "adapter") -> Path:
    """Write ``folder/README.md`` (replacing PEFT's empty template) from ``meta``; returns its path.

    ``adapter_config.json`` in ``folder`` adds the number of adapted modules when present.
    """
    folder = Path(folder)
    config_file = folder / "adapter_config.json"
    adapter_config = json.loads(config_file.read_text()) if config_file.is_file() else None
    path = folder / CARD_FILE
    path.write_text(model_card(meta, adapter_config, kind))
    return path


def preprocessing_text(pre: dict[str, Any]) -> str:
    """The "Preprocessing" section of a deployed model's card, from its ``image_size``, ``resize``,
    ``mean`` and ``std``: what a runtime without samlora must do to an image and its prompts."""
    resize = (
        "longest side resized to S, padded bottom/right to S x S"
        if pre.get("resize") == "longest_side"
        else "both sides resized to S"
    )
    return (
        f"RGB uint8 -> {resize} (S = {pre.get('image_size')}, bilinear), scaled to 0..1, normalised with mean "
        f"{list(pre.get('mean', []))} and std {list(pre.get('std', []))}; prompt coordinates are pixels of the "
        "original image scaled by the same factors, and mask logits are upsampled to S x S, cropped to the "
        "resized image and resized to the original size."
    )


def transformers_usage(model_class: str, processor_class: str, concept: bool) -> str:
    """How to load a merged folder with plain transformers classes (and with samlora)."""
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
