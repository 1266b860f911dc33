"""Run an ONNX export with onnxruntime, behind the encode/decode interface of samlora's Predictor.

:class:`OnnxBackend` reads an export folder (its ``export.json`` and graphs) and offers
``encode(pixel_values) -> ImageEmbeddings`` and ``decode(...) -> Decoded`` with the
arguments of :func:`samlora.models.promptable.encode` / ``decode``, so ``Predictor(backend=...)``
keeps its prompt mapping and post-processing unchanged (``samlora predict --onnx DIR``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from samlora.errors import ExportError
from samlora.models.families import FAMILIES
from samlora.models.loading import LoadedModel
from samlora.models.preprocess import Preprocessing
from samlora.models.promptable import Decoded, ImageEmbeddings

from .graphs import prompt_tokens

DESCRIPTION_FILE = "export.json"
INSTALL_HINT = "pip install 'samlora[export]'"


def require_onnx(what: str) -> tuple[Any, Any]:
    """The ``onnx`` and ``onnxruntime`` modules, or a clear error naming the extra to install."""
    try:
        import onnx
        import onnxruntime
    except ImportError as err:
        raise ExportError(
            f"{what} needs the optional packages onnx and onnxruntime ({err.name} is not installed): {INSTALL_HINT}"
        ) from None
    return onnx, onnxruntime


def read_description(folder: str | Path) -> dict[str, Any]:
    """The ``export.json`` of an export folder, with a clear error when ``folder`` is not one."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ExportError(
            f"ONNX folder {folder} does not exist; create one with `samlora export onnx MODEL --output DIR`"
        )
    path = folder / DESCRIPTION_FILE
    if not path.is_file():
        raise ExportError(
            f"{folder} is not a samlora ONNX export (no {DESCRIPTION_FILE}); create one with "
            "`samlora export onnx MODEL --output DIR`"
        )
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ExportError(f"{path}: malformed JSON ({err}); export the model again") from err


def providers_for(device: str, available: list[str]) -> list[str]:
    """onnxruntime execution providers for ``device`` (``auto``: CUDA where onnxruntime has it, else CPU)."""
    if device == "cuda" and "CUDAExecutionProvider" not in available:
        raise ExportError(
            "--device cuda was asked for but this onnxruntime has no CUDAExecutionProvider; install "
            "onnxruntime-gpu or use --device cpu"
        )
    if device in ("auto", "cuda") and "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    if device not in ("auto", "cpu", "cuda"):
        raise ExportError(f"--device {device} is not available with --onnx; use auto, cpu or cuda")
    return ["CPUExecutionProvider"]


def open_session(path: Path, providers: list[str]) -> Any:
    """An onnxruntime session on ``path`` with warnings kept out of the terminal."""
    _, ort = require_onnx("running an ONNX export")
    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=options, providers=providers)


def loaded_from(description: dict[str, Any], name: str) -> LoadedModel:
    """A :class:`LoadedModel` without torch weights (``model`` is ``None``): family and preprocessing of an export."""
    pre = description["preprocessing"]
    preprocessing = Preprocessing(
        image_size=int(pre["image_size"]),
        resize=pre["resize"],
        mean=tuple(pre["mean"]),
        std=tuple(pre["std"]),
        low_res_size=int(pre["low_res_size"]),
    )
    return LoadedModel(
        model=None,  # type: ignore[arg-type]  # the graphs replace the torch model
        spec=FAMILIES[description["family"]],
        name=name,
        fingerprint=description.get("fingerprint", ""),
        preprocessing=preprocessing,
    )


class OnnxBackend:
    """The promptable encode/decode of an export folder on onnxruntime.

    Args:
        folder: written by ``samlora export onnx``.
        device: ``auto`` (CUDA where onnxruntime has it), ``cpu`` or ``cuda``.
        precision: ``fp32``, or ``fp16`` when the folder holds fp16 graphs.
    """

    name = "onnx"

    def __init__(self, folder: str | Path, device: str = "auto", precision: str = "fp32"):
        _, ort = require_onnx("running an ONNX export")
        self.folder = Path(folder)
        self.description = read_description(self.folder)
        family, graphs = self.description["family"], self.description.get("graphs", {})
        if "prompt_decoder" not in graphs.get("fp32", {}):
            missing = ", ".join(self.description.get("not_exported") or ["the prompt decoder"])
            raise ExportError(
                f"{self.folder} holds a {family} export without a prompt decoder (not exported: {missing}), so it "
                "cannot predict masks; run this model with `samlora predict --model ...` in PyTorch"
            )
        if precision not in graphs:
            raise ExportError(
                f"{self.folder} has no {precision} graphs (it has {', '.join(sorted(graphs))}); export with --fp16 "
                "for fp16 graphs"
            )
        self.loaded = loaded_from(self.description, str(self.folder))
        self.providers = providers_for(device, ort.get_available_providers())
        files = graphs[precision]
        self.sessions = {
            key: open_session(self.folder / g["file"], self.providers) for key, g in files.items()
        }
        self.extra_names = [i["name"] for i in files["image_encoder"]["outputs"][1:]]

    def encode(self, pixel_values: torch.Tensor) -> ImageEmbeddings:
        """``B x 3 x S x S`` float pixel values -> the image embeddings (torch, CPU)."""
        feed = {"pixel_values": pixel_values.detach().float().cpu().numpy()}
        outs = [torch.from_numpy(o) for o in self.sessions["image_encoder"].run(None, feed)]
        return ImageEmbeddings(outs[0], outs[1:])

    def decode(
        self,
        embeddings: ImageEmbeddings,
        image_index: torch.Tensor,
        *,
        boxes: torch.Tensor | None = None,
        points: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        mask_inputs: torch.Tensor | None = None,
        multimask: bool = False,
    ) -> Decoded:
        """Decode ``N`` prompts as :func:`samlora.models.promptable.decode` does (input-frame coordinates)."""
        coords, labs = prompt_tokens(
            self.loaded.spec.name,
            boxes=None if boxes is None else boxes.cpu(),
            points=None if points is None else points.cpu(),
            labels=None if labels is None else labels.cpu(),
        )
        n, low = coords.shape[0], self.loaded.preprocessing.low_res_size
        masks_in = mask_inputs.float().cpu() if mask_inputs is not None else torch.zeros(n, 1, low, low)
        has = torch.full((n,), 1.0 if mask_inputs is not None else 0.0)
        session = self.sessions["prompt_decoder_multimask" if multimask else "prompt_decoder"]
        index = image_index.cpu()
        parts: list[tuple[torch.Tensor, list[np.ndarray]]] = []
        for image in index.unique().tolist():
            rows = (index == image).nonzero().flatten()
            feed = {"image_embeddings": embeddings.main[image : image + 1].float().numpy()}
            feed.update(
                {k: t[image : image + 1].float().numpy() for k, t in zip(self.extra_names, embeddings.extra)}
            )
            feed.update(
                point_coords=coords[rows].numpy(),
                point_labels=labs[rows].numpy(),
                mask_input=masks_in[rows].numpy(),
                has_mask_input=has[rows].numpy(),
            )
            parts.append((rows, session.run(None, feed)))
        outs = [torch.empty((n, *p.shape[1:]), dtype=torch.float32) for p in parts[0][1]]
        for rows, values in parts:
            for out, value in zip(outs, values):
                out[rows] = torch.from_numpy(value).float()
        return Decoded(logits=outs[0], iou=outs[1], object_score=outs[2] if len(outs) > 2 else None)
