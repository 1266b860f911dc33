"""``samlora export onnx``: merge, export the graphs, describe them, verify them with onnxruntime.

The output folder holds ``image_encoder.onnx``, ``prompt_decoder.onnx`` (single mask) and
``prompt_decoder_multimask.onnx`` (3 candidates) for the promptable families (SAM 3:
``vision_encoder.onnx`` only), their fp16 twins with ``fp16``, ``export.json`` (inputs,
outputs, preprocessing, prompt convention, verification figures: enough for another
runtime to reproduce samlora's predictions) and a model card (``README.md``). It is
written under a temporary name and only put in place once verification passed.
"""

from __future__ import annotations

import json
import logging
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from samlora import __version__
from samlora.errors import ExportError
from samlora.io.atomic import replacing_dir
from samlora.lora.card import CARD_FILE
from samlora.models.loading import LoadedModel

from .card import onnx_card
from .graphs import (
    PAD_ALWAYS,
    PROMPTABLE,
    ConceptVisionGraph,
    ImageEncoderGraph,
    PromptDecoderGraph,
    concept_output_names,
    extra_names,
    prompt_tokens,
)
from .runtime import DESCRIPTION_FILE, open_session, require_onnx
from .source import load_for_export
from .verify import FP16, FP32, Tolerance, failures, sample_image, verify_concept_vision, verify_promptable

log = logging.getLogger(__name__)
EXPORTERS = ("torchscript", "dynamo")
DTYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(int64)": "int64"}
ENCODER, DECODER, MULTI, VISION = (
    "image_encoder",
    "prompt_decoder",
    "prompt_decoder_multimask",
    "vision_encoder",
)
CONCEPT_NOT_EXPORTED = [
    "text encoder",
    "geometry encoder",
    "DETR encoder",
    "DETR decoder",
    "mask decoder",
]


def check_output(output: Path, overwrite: bool) -> None:
    """Refuse an existing non-empty ``output`` unless ``overwrite`` and it holds an earlier export."""
    if not output.exists():
        return
    if not output.is_dir():
        raise ExportError(f"--output {output} is a file; name a new folder for the export")
    if not any(output.iterdir()):
        return
    ours = (output / DESCRIPTION_FILE).is_file()
    if not (overwrite and ours):
        why = (
            "pass --overwrite to replace it"
            if ours
            else "it is not a samlora ONNX export, so it is never replaced"
        )
        raise ExportError(f"--output {output} already exists and is not empty ({why}); name a new folder")


def _dynamic_shapes(inputs: list[str], dynamic: dict[str, dict[int, str]]) -> dict[str, Any]:
    """torch.export's ``dynamic_shapes`` for the graph modules (``forward(x)`` or ``forward(*inputs)``),
    one ``Dim`` per axis name so that equal names stay equal."""
    dims: dict[str, Any] = {}
    per_input = [
        {axis: dims.setdefault(name, torch.export.Dim(name)) for axis, name in dynamic.get(i, {}).items()}
        or None
        for i in inputs
    ]
    shapes = (per_input[0],) if len(inputs) == 1 else (tuple(per_input),)
    return {"dynamic_shapes": shapes, "verbose": False}


def _export_graph(
    module: torch.nn.Module,
    args: tuple[torch.Tensor, ...],
    path: Path,
    inputs: list[str],
    outputs: list[str],
    dynamic: dict[str, dict[int, str]],
    exporter: str,
    opset: int,
) -> None:
    """One ``torch.onnx.export`` call with named inputs/outputs and dynamic axes."""
    module.eval()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(
                module,
                args,
                str(path),
                input_names=inputs,
                output_names=outputs,
                opset_version=opset,
                dynamo=exporter == "dynamo",
                **(_dynamic_shapes(inputs, dynamic) if exporter == "dynamo" else {"dynamic_axes": dynamic}),
            )
        except ImportError as err:  # the dynamo exporter needs onnxscript
            raise ExportError(
                f"--exporter {exporter} needs {err.name}: pip install 'samlora[export]'"
            ) from None
        except Exception as err:  # torch's exporters raise many kinds; name the graph and the way out
            other = "dynamo" if exporter == "torchscript" else "torchscript"
            raise ExportError(
                f"exporting {path.name} with the {exporter} exporter failed: {str(err).splitlines()[0] if str(err) else type(err).__name__}; "
                f"try --exporter {other}"
            ) from err


def _export_promptable(loaded: LoadedModel, folder: Path, exporter: str, opset: int) -> list[str]:
    """The image encoder and both prompt decoders; returns the extra per-image tensors' names."""
    pre, spec, model = loaded.preprocessing, loaded.spec, loaded.model
    image = sample_image(pre)
    pixels = pre.images([image, image.flip(-1)])  # batch 2, so the batch axis stays dynamic
    with torch.no_grad():
        embeddings = ImageEncoderGraph(model, spec).eval()(pixels)
    extras = extra_names(spec, len(embeddings) - 1)
    names = ["image_embeddings", *extras]
    _export_graph(ImageEncoderGraph(model, spec), (pixels,), folder / f"{ENCODER}.onnx", ["pixel_values"],
                  names, {k: {0: "batch"} for k in ["pixel_values", *names]}, exporter, opset)  # fmt: skip
    s, low = float(pre.image_size), pre.low_res_size
    coords, labels = prompt_tokens(
        spec.name,
        boxes=torch.tensor([[0.1, 0.1, 0.5, 0.5], [0.3, 0.2, 0.9, 0.8]]) * s,
        points=torch.tensor([[[0.3, 0.3], [0.6, 0.6]], [[0.5, 0.5], [0.1, 0.9]]]) * s,
        labels=torch.tensor([[1, 0], [1, 1]]),
    )
    args = (*(e[:1] for e in embeddings), coords, labels, torch.zeros(2, 1, low, low), torch.zeros(2))
    inputs = [*names, "point_coords", "point_labels", "mask_input", "has_mask_input"]
    outputs = ["masks", "iou_scores"] + (["object_scores"] if spec.name in PAD_ALWAYS else [])
    prompts, tokens = {0: "num_prompts"}, {0: "num_prompts", 1: "num_tokens"}
    dynamic = {
        "point_coords": tokens,
        "point_labels": tokens,
        "mask_input": prompts,
        "has_mask_input": prompts,
    }
    dynamic.update({k: prompts for k in outputs})
    for multimask, stem in ((False, DECODER), (True, MULTI)):
        graph = PromptDecoderGraph(model, spec, len(extras), multimask)
        _export_graph(graph, args, folder / f"{stem}.onnx", inputs, outputs, dynamic, exporter, opset)
    return extras


def _export_concept(loaded: LoadedModel, folder: Path, exporter: str, opset: int) -> None:
    """SAM 3: the vision encoder only (the per-image cost); the text and DETR parts stay in PyTorch."""
    pre = loaded.preprocessing
    image = sample_image(pre)
    pixels = pre.images([image, image.flip(-1)])
    names = concept_output_names(loaded.model, pixels)
    _export_graph(ConceptVisionGraph(loaded.model), (pixels,), folder / f"{VISION}.onnx", ["pixel_values"],
                  names, {k: {0: "batch"} for k in ["pixel_values", *names]}, exporter, opset)  # fmt: skip


def _to_fp16(folder: Path, stem: str) -> str:
    """Write ``<stem>_fp16.onnx``: weights and activations in float16, inputs and outputs kept float32."""
    onnx, _ = require_onnx("fp16 export")
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = onnx.load(str(folder / f"{stem}.onnx"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        half = convert_float_to_float16(model, keep_io_types=True)
    name = f"{stem}_fp16.onnx"
    large = half.ByteSize() > 1_800_000_000
    onnx.save(
        half, str(folder / name), save_as_external_data=large, location=f"{name}.data" if large else None
    )
    return name


def _describe_graph(folder: Path, file: str, multimask: bool | None = None) -> dict[str, Any]:
    """A graph's file, inputs and outputs (name, shape with named dynamic axes, dtype), read back by onnxruntime."""
    session = open_session(folder / file, ["CPUExecutionProvider"])

    def io(values: list[Any]) -> list[dict[str, Any]]:
        return [{"name": v.name, "shape": list(v.shape), "dtype": DTYPES.get(v.type, v.type)} for v in values]

    out = {"file": file, "inputs": io(session.get_inputs()), "outputs": io(session.get_outputs())}
    if multimask is not None:
        out["multimask"] = multimask
    return out


def _description(loaded: LoadedModel, source: Any, exporter: str, opset: int, graphs: dict) -> dict[str, Any]:
    pre, spec = loaded.preprocessing, loaded.spec
    promptable = spec.name in PROMPTABLE
    meta = source.meta
    return {
        "format": "samlora-onnx",
        "format_version": 1,
        "samlora_version": __version__,
        "family": spec.name,
        "task": spec.task,
        "model_class": spec.model_class,
        "source": {
            "kind": source.kind,
            "base_model": meta.get("base_model"),
            "adapter": meta.get("merged_from"),
        },
        "exporter": exporter,
        "opset": opset,
        "preprocessing": {
            **asdict(pre),
            "input": "RGB uint8 H x W x 3",
            "steps": [
                "longest side resized to image_size (aspect kept), bilinear with antialiasing when shrinking"
                if pre.resize == "longest_side"
                else "both sides resized to image_size, bilinear with antialiasing when shrinking",
                "values / 255, then (value - mean) / std per channel",
                "padded with zeros to image_size x image_size at the bottom and right"
                if pre.resize == "longest_side"
                else "no padding",
            ],
        },
        "prompts": {
            "coordinates": "XY pixels of the original image scaled into the input frame by the resize factors",
            "point_labels": {
                "1": "foreground point",
                "0": "background point",
                "2": "box top-left corner",
                "3": "box bottom-right corner",
                "-1": "padding point at (0, 0)",
            },  # fmt: skip
            "order": "the points, then the box corners (2, 3) when there is a box",
            "padding_point": "always" if spec.name in PAD_ALWAYS else "only when there is no box",
            "multimask": "prompt_decoder gives 1 mask per prompt; prompt_decoder_multimask gives 3 candidates "
            "(samlora uses it for single-point prompts and keeps the candidate with the highest iou_scores)",
            "mask_input": "low-resolution logits of a previous prediction; has_mask_input 1 uses it, 0 ignores it",
        }
        if promptable
        else None,
        "postprocessing": "mask logits upsampled (bilinear) to image_size x image_size, cropped to the resized "
        "image, resized (bilinear) to the original size, foreground where > 0"
        if promptable
        else None,
        "not_exported": [] if promptable else CONCEPT_NOT_EXPORTED,
        "graphs": graphs,
    }


def export_onnx(
    source: str,
    output: str | Path,
    model_name: str | None = None,
    overwrite: bool = False,
    fp16: bool = False,
    exporter: str = "torchscript",
    opset: int = 18,
    verify: bool = True,
    tolerance: Tolerance = FP32,
    fp16_tolerance: Tolerance = FP16,
) -> dict[str, Any]:
    """Export ``source`` (adapter or run folder, merged folder, base model) to ONNX in ``output``.

    Returns the written ``export.json`` content. Raises :class:`ExportError` when the extra
    is missing, the output exists, the export fails or verification exceeds the tolerances
    (nothing is written then).
    """
    require_onnx("samlora export onnx")
    if exporter not in EXPORTERS:
        raise ExportError(f"--exporter {exporter} is not one of {', '.join(EXPORTERS)}")
    output = Path(output).resolve()
    check_output(output, overwrite)
    src = load_for_export(source, model_name)
    loaded = src.loaded
    loaded.model.to("cpu").eval()
    family = loaded.spec.name
    if family not in PROMPTABLE and family != "sam3":
        raise ExportError(
            f"family '{family}' cannot be exported to ONNX; exportable: {', '.join(PROMPTABLE)}, sam3"
        )
    with replacing_dir(output) as tmp:  # removed when anything fails: nothing is written
        stems = [ENCODER, DECODER, MULTI] if family in PROMPTABLE else [VISION]
        log.info("exporting %s (%s) with the %s exporter", source, family, exporter)
        if family in PROMPTABLE:
            _export_promptable(loaded, tmp, exporter, opset)
        else:
            _export_concept(loaded, tmp, exporter, opset)
        keys = {
            ENCODER: "image_encoder",
            DECODER: "prompt_decoder",
            MULTI: "prompt_decoder_multimask",
            VISION: "vision_encoder",
        }
        multi = {DECODER: False, MULTI: True}
        graphs = {"fp32": {keys[s]: _describe_graph(tmp, f"{s}.onnx", multi.get(s)) for s in stems}}
        if fp16:
            graphs["fp16"] = {keys[s]: _describe_graph(tmp, _to_fp16(tmp, s), multi.get(s)) for s in stems}
        description = _description(loaded, src, exporter, opset, graphs)
        (tmp / DESCRIPTION_FILE).write_text(json.dumps(description, indent=2) + "\n")
        description["verification"] = {}
        for precision in graphs if verify else []:
            tol = tolerance if precision == "fp32" else fp16_tolerance
            figures = (
                verify_promptable(loaded, tmp, precision, tol)
                if family in PROMPTABLE
                else verify_concept_vision(
                    loaded, tmp, graphs[precision]["vision_encoder"]["file"], precision, tol
                )
            )
            description["verification"][precision] = figures
            if not figures["passed"]:
                raise ExportError(
                    f"ONNX verification of the {precision} graphs failed: {'; '.join(failures(figures))}. Nothing was "
                    "written. Loosen the check with --tolerance/--min-agreement (--fp16-tolerance/--fp16-min-agreement), "
                    "or pass --no-verify to write the graphs unverified for inspection"
                )
        (tmp / DESCRIPTION_FILE).write_text(json.dumps(description, indent=2) + "\n")
        (tmp / CARD_FILE).write_text(onnx_card(src.meta, description))
    return description
