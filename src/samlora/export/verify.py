"""Built-in verification of an export: onnxruntime against PyTorch on a sample image and sample prompts.

The PyTorch side is samlora's own forward (:func:`samlora.models.promptable.encode` /
``decode``, what the Predictor runs); the ONNX side decodes from the ONNX image
embeddings, so the figures are end to end. Prompts cover boxes, point sets with a
negative click, a single point (multimask), boxes with points and boxes with a mask
input, with numbers of prompts and tokens other than those the graphs were traced with.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from samlora.models.loading import LoadedModel
from samlora.models.preprocess import Preprocessing
from samlora.models.promptable import decode, encode

from .graphs import ConceptVisionGraph
from .runtime import OnnxBackend, open_session


@dataclass(frozen=True)
class Tolerance:
    """What an export must meet.

    Attributes:
        logits: max ``|onnx - torch|`` of mask logits (and IoU scores, encoder features),
            relative to ``max(1, max |torch value|)``.
        agreement: min fraction of low-resolution mask pixels (logit > 0) on which both agree.
    """

    logits: float
    agreement: float


FP32 = Tolerance(logits=1e-3, agreement=0.999)
FP16 = Tolerance(logits=5e-2, agreement=0.99)


def sample_image(pre: Preprocessing) -> torch.Tensor:
    """A deterministic ``3 x H x W`` uint8 scene (gradient, a rectangle, a disc), ``H = 3S/4``, ``W = S``."""
    size = pre.image_size
    h, w = (3 * size) // 4, size
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([x / w * 180, y / h * 120 + 40, (x + y) / (h + w) * 90 + 60], axis=-1)
    img[h // 6 : h // 2, w // 8 : w // 2] = (230, 60, 40)
    img[((y - 0.6 * h) ** 2 + (x - 0.7 * w) ** 2) < (0.18 * h) ** 2] = (40, 200, 90)
    return torch.from_numpy(img.astype(np.uint8)).permute(2, 0, 1).contiguous()


def sample_cases(pre: Preprocessing) -> list[tuple[str, dict[str, Any]]]:
    """Named prompt sets in the input frame (``decode`` keyword arguments)."""
    s = float(pre.image_size)
    boxes = torch.tensor([[0.1, 0.12, 0.52, 0.4], [0.5, 0.3, 0.92, 0.72], [0.05, 0.05, 0.95, 0.7]]) * s
    points = torch.tensor([[[0.3, 0.25], [0.2, 0.6], [0.8, 0.2]], [[0.7, 0.45], [0.1, 0.1], [0.72, 0.5]]]) * s
    labels = torch.tensor([[1, 0, 0], [1, 0, 1]])
    return [
        ("3 boxes", {"boxes": boxes}),
        ("2 point sets of 3 (with negatives)", {"points": points, "labels": labels}),
        ("1 point, multimask", {"points": points[:1, :1], "labels": labels[:1, :1], "multimask": True}),
        ("2 boxes with 3 points each", {"boxes": boxes[:2], "points": points, "labels": labels}),
        ("3 boxes, multimask", {"boxes": boxes, "multimask": True}),
        ("3 boxes with a mask input", {"boxes": boxes, "mask_from": "3 boxes"}),
    ]


def _relative(diff: float, reference: torch.Tensor) -> float:
    return diff / max(1.0, float(reference.abs().max()) if reference.numel() else 1.0)


def verify_promptable(loaded: LoadedModel, folder: Path, precision: str, tol: Tolerance) -> dict[str, Any]:
    """Compare the folder's ``precision`` graphs with PyTorch; returns the figures (``passed`` among them)."""
    backend = OnnxBackend(folder, device="cpu", precision=precision)
    pre, spec, model = loaded.preprocessing, loaded.spec, loaded.model
    pixels = pre.images([sample_image(pre)])
    with torch.no_grad():
        ref_emb = encode(model, spec, pixels)
    got_emb = backend.encode(pixels)
    encoder = max(
        _relative(float((g - r).abs().max()), r)
        for g, r in zip([got_emb.main, *got_emb.extra], [ref_emb.main, *ref_emb.extra])
    )
    logits = iou = 0.0
    agreement, scale, results = 1.0, 0.0, {}
    for name, case in sample_cases(pre):
        kwargs = dict(case)
        source = kwargs.pop("mask_from", None)
        if source is not None:
            kwargs["mask_inputs"] = results[source].logits[:, :1]
        n = next(v.shape[0] for v in kwargs.values() if isinstance(v, torch.Tensor))
        index = torch.zeros(n, dtype=torch.long)
        with torch.no_grad():
            ref = decode(model, spec, ref_emb, index, **kwargs)
        got = backend.decode(got_emb, index, **kwargs)
        results[name] = ref
        logits = max(logits, _relative(float((got.logits - ref.logits).abs().max()), ref.logits))
        iou = max(iou, _relative(float((got.iou - ref.iou).abs().max()), ref.iou))
        agreement = min(agreement, float(((got.logits > 0) == (ref.logits > 0)).float().mean()))
        scale = max(scale, float(ref.logits.abs().max()))
    passed = max(encoder, logits, iou) <= tol.logits and agreement >= tol.agreement
    return {
        "precision": precision,
        "cases": [name for name, _ in sample_cases(pre)],
        "encoder_max_rel_diff": encoder,
        "logits_max_rel_diff": logits,
        "iou_max_rel_diff": iou,
        "logit_scale": scale,
        "mask_agreement": agreement,
        "tolerance": asdict(tol),
        "passed": passed,
    }


def verify_concept_vision(
    loaded: LoadedModel, folder: Path, file: str, precision: str, tol: Tolerance
) -> dict[str, Any]:
    """Compare SAM 3's exported vision encoder with PyTorch (feature maps only: no masks are exported)."""
    pre = loaded.preprocessing
    pixels = pre.images([sample_image(pre)])
    with torch.no_grad():
        ref = ConceptVisionGraph(loaded.model).eval()(pixels)
    got = open_session(folder / file, ["CPUExecutionProvider"]).run(None, {"pixel_values": pixels.numpy()})
    encoder = max(_relative(float(np.abs(g - r.numpy()).max()), r) for g, r in zip(got, ref))
    return {
        "precision": precision,
        "cases": ["vision encoder features of the sample image"],
        "encoder_max_rel_diff": encoder,
        "mask_agreement": None,
        "tolerance": asdict(tol),
        "passed": encoder <= tol.logits,
    }


def failures(figures: dict[str, Any]) -> list[str]:
    """Human-readable reasons a verification failed (empty when it passed)."""
    tol, out = figures["tolerance"], []
    for key in ("encoder_max_rel_diff", "logits_max_rel_diff", "iou_max_rel_diff"):
        if figures.get(key) is not None and figures[key] > tol["logits"]:
            out.append(f"{key.replace('_', ' ')} {figures[key]:.3g} > {tol['logits']:.3g}")
    if figures.get("mask_agreement") is not None and figures["mask_agreement"] < tol["agreement"]:
        out.append(f"mask agreement {figures['mask_agreement']:.5f} < {tol['agreement']}")
    return out
