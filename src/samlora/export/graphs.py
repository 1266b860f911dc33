"""The torch modules that become ONNX graphs, and the prompt-token convention they share with any runtime.

Two graphs, as segment-anything's own export splits the model:

* **image encoder**: ``pixel_values`` ``B x 3 x S x S`` (samlora's preprocessing) ->
  ``image_embeddings`` ``B x C x h x w`` plus the family's extra per-image tensors
  (SAM-HQ: ``intermediate_embeddings_<i>`` ``B x h' x w' x C'``; SAM 2 / SAM 3 tracker:
  ``high_res_features_<i>`` ``B x C_i x h_i x w_i``). SAM 3: its vision encoder's FPN features.
* **prompt decoder** (prompt encoder + mask decoder), for one image: its embeddings
  (batch 1), ``point_coords`` ``N x T x 2`` (XY in the ``S x S`` input frame),
  ``point_labels`` ``N x T`` int64, ``mask_input`` ``N x 1 x 4h x 4w`` low-resolution mask
  logits and ``has_mask_input`` ``N`` (1 where that prompt's mask input is used) ->
  ``masks`` ``N x M x 4h x 4w`` low-resolution logits and ``iou_scores`` ``N x M``
  (+ ``object_scores`` ``N`` for SAM 2 / SAM 3 tracker). ``N`` prompts and ``T`` tokens
  are dynamic. It is exported twice: ``M = 1`` (single mask) and ``M = 3`` (multimask).

Prompt tokens (:func:`prompt_tokens`) follow segment-anything's ONNX convention: point
labels 1 (foreground) / 0 (background), a box as its two corners with labels 2 and 3
after the points, and a padding point ``(0, 0)`` with label -1 where the family's
prompt encoder adds one (SAM, SAM-HQ: only without a box; SAM 2, SAM 3 tracker: always).
"""

from __future__ import annotations

import torch
from torch import nn

from samlora.models.families import FamilySpec
from samlora.models.promptable import ImageEmbeddings, core_model, encode

PROMPTABLE = ("sam", "sam_hq", "sam2", "sam3_tracker")
PAD_ALWAYS = ("sam2", "sam3_tracker")
PAD_LABEL, BOX_LABELS = -1, (2, 3)


def extra_names(spec: FamilySpec, count: int) -> list[str]:
    """Names of the family's extra per-image tensors (graph outputs of the encoder, inputs of the decoder)."""
    stem = "intermediate_embeddings" if spec.name == "sam_hq" else "high_res_features"
    return [f"{stem}_{i}" for i in range(count)]


def prompt_tokens(
    family: str,
    boxes: torch.Tensor | None = None,
    points: torch.Tensor | None = None,
    labels: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The decoder's ``N x T x 2`` coordinates and ``N x T`` int64 labels for ``N`` prompts.

    Args:
        boxes: ``N x 4`` XYXY in the input frame, or ``None``.
        points: ``N x P x 2`` XY in the input frame, or ``None``.
        labels: ``N x P`` (1 foreground, 0 background), required with ``points``.
    """
    coords, labs = [], []
    if points is not None:
        coords.append(points.float())
        labs.append(labels.to(torch.int64))
    if boxes is not None:
        n = boxes.shape[0]
        coords.append(boxes.float().reshape(n, 2, 2))
        labs.append(torch.tensor(BOX_LABELS, dtype=torch.int64, device=boxes.device).expand(n, 2))
    if not coords:
        raise ValueError("a prompt needs points or a box")
    n, device = coords[0].shape[0], coords[0].device
    if boxes is None or family in PAD_ALWAYS:
        coords.append(torch.zeros(n, 1, 2, device=device))
        labs.append(torch.full((n, 1), PAD_LABEL, dtype=torch.int64, device=device))
    return torch.cat(coords, dim=1), torch.cat(labs, dim=1)


class ImageEncoderGraph(nn.Module):
    """``pixel_values`` -> ``(image_embeddings, *extra)`` exactly as samlora's promptable ``encode``."""

    def __init__(self, model: nn.Module, spec: FamilySpec):
        super().__init__()
        self.model, self.spec = model, spec

    def forward(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, ...]:
        emb = encode(self.model, self.spec, pixel_values)
        return (emb.main, *emb.extra)


class ConceptVisionGraph(nn.Module):
    """SAM 3's vision encoder: ``pixel_values`` -> ``last_hidden_state``, FPN features and their position encodings."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.encoder = core_model(model).vision_encoder

    def forward(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.encoder(pixel_values)
        return (out.last_hidden_state, *out.fpn_hidden_states, *out.fpn_position_encoding)


def concept_output_names(model: nn.Module, pixel_values: torch.Tensor) -> list[str]:
    """Output names of :class:`ConceptVisionGraph` (their count follows the FPN's levels)."""
    with torch.no_grad():
        out = core_model(model).vision_encoder(pixel_values)
    levels = len(out.fpn_hidden_states)
    return (
        ["last_hidden_state"]
        + [f"fpn_hidden_states_{i}" for i in range(levels)]
        + [f"fpn_position_encoding_{i}" for i in range(len(out.fpn_position_encoding))]
    )


class PromptDecoderGraph(nn.Module):
    """Prompt encoder + mask decoder of one image for ``N`` prompts (see the module docstring).

    Sparse prompts are embedded with the model's own prompt-encoder weights the way
    its ``_embed_points``/``_embed_boxes`` do (pixel-centre shift, positional
    encoding, ``not_a_point`` for label -1, ``point_embed[label]`` for 0..3); each
    prompt is one batch row of the mask decoder, as in samlora's ``decode``.
    """

    def __init__(self, model: nn.Module, spec: FamilySpec, n_extra: int, multimask: bool):
        super().__init__()
        if spec.name not in PROMPTABLE:
            raise ValueError(f"family '{spec.name}' has no promptable decoder")
        self.core, self.spec, self.n_extra, self.multimask = core_model(model), spec, n_extra, multimask
        encoder = self.core.prompt_encoder
        table = encoder.point_embed
        weight = table.weight if isinstance(table, nn.Embedding) else torch.cat([e.weight for e in table])
        self.register_buffer("point_table", weight.detach().clone(), persistent=False)
        size = encoder.input_image_size
        self.input_size = (size, size) if isinstance(size, int) else tuple(size)

    def sparse(self, coords: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """``N x 1 x T x C`` sparse prompt embeddings of ``N x T x 2`` coordinates with ``N x T`` labels."""
        encoder = self.core.prompt_encoder
        coords, labels = coords[:, None].float(), labels[:, None]
        emb = encoder.shared_embedding(coords + 0.5, self.input_size)
        emb = torch.where(labels[..., None] == PAD_LABEL, encoder.not_a_point_embed.weight, emb)
        emb = torch.where(labels[..., None] != -10, emb, torch.zeros_like(emb))
        return emb + self.point_table[labels.clamp(min=0)] * (labels >= 0).unsqueeze(-1).to(emb.dtype)

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        main, extra = inputs[0], list(inputs[1 : 1 + self.n_extra])
        coords, labels, mask_input, has_mask = inputs[1 + self.n_extra :]
        n = coords.shape[0]
        encoder = self.core.prompt_encoder
        sparse = self.sparse(coords, labels).to(main.dtype)
        has = has_mask.to(main.dtype).reshape(-1, 1, 1, 1)
        no_mask = encoder.no_mask_embed.weight.reshape(1, -1, 1, 1).to(main.dtype)
        dense = encoder.mask_embed(mask_input.to(main.dtype)) * has + no_mask * (1 - has)
        rows = ImageEmbeddings(main, extra).select(torch.zeros(n, dtype=torch.long, device=main.device))
        positional = self.core.get_image_wide_positional_embeddings().to(main.dtype).repeat(n, 1, 1, 1)
        kwargs = dict(
            image_embeddings=rows.main,
            image_positional_embeddings=positional,
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=self.multimask,
        )
        if self.spec.name == "sam":
            masks, iou = self.core.mask_decoder(**kwargs)[:2]
            return masks[:, 0], iou[:, 0]
        if self.spec.name == "sam_hq":
            out = self.core.mask_decoder(**kwargs, hq_token_only=False, intermediate_embeddings=rows.extra)
            return out[0][:, 0], out[1][:, 0]
        masks, iou, _, object_score = self.core.mask_decoder(**kwargs, high_resolution_features=rows.extra)
        return masks[:, 0], iou[:, 0], object_score.reshape(-1)
