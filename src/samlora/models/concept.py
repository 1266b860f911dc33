"""The concept forward of SAM 3: encode images once and texts once, decode every (image, text) pair.

A pair is one image with one text prompt; its outputs are ``Q`` query
predictions (logits, boxes, masks) and one presence logit. Instances are
scored as SAM 3 does: ``sigmoid(logit) * sigmoid(presence)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from transformers.modeling_outputs import BaseModelOutputWithPooling

from .loading import LoadedModel
from .promptable import core_model


@dataclass
class PairOutputs:
    """Outputs for ``N`` (image, text) pairs with ``Q`` queries.

    Attributes:
        logits: ``N x Q`` classification logits.
        presence: ``N`` presence logits.
        boxes: ``N x Q x 4`` normalised XYXY in [0, 1] of the input frame.
        masks: ``N x Q x h x w`` mask logits.
    """

    logits: torch.Tensor
    presence: torch.Tensor
    boxes: torch.Tensor
    masks: torch.Tensor

    def scores(self) -> torch.Tensor:
        """``N x Q`` instance scores: detection probability times presence probability."""
        return self.logits.float().sigmoid() * self.presence.float().sigmoid()[:, None]


def tokenize(
    tokenizer: object, texts: list[str], max_length: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """``T x L`` input ids and attention mask (padded to the text encoder's length, as SAM 3's processor does)."""
    enc = tokenizer(texts, padding="max_length", truncation=True, max_length=max_length, return_tensors="pt")
    return enc["input_ids"].to(device), enc["attention_mask"].to(device)


def encode_images(model: nn.Module, pixel_values: torch.Tensor) -> object:
    """Vision features of ``B x 3 x S x S`` images (gradients kept for LoRA in the backbone)."""
    return core_model(model).vision_encoder(pixel_values)


def encode_texts(
    model: nn.Module, loaded: LoadedModel, texts: list[str], device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """``T x L x C`` projected text features and ``T x L`` mask, one row per distinct text."""
    core = core_model(model)
    length = core.config.text_config.max_position_embeddings
    ids, mask = tokenize(loaded.tokenizer, texts, length, device)
    features = core.get_text_features(input_ids=ids, attention_mask=mask, return_dict=True).pooler_output
    return features, mask


def decode_pairs(
    model: nn.Module,
    vision: object,
    image_index: torch.Tensor,
    text_features: torch.Tensor,
    text_mask: torch.Tensor,
    text_index: torch.Tensor,
) -> PairOutputs:
    """Decode ``N`` pairs: image ``image_index[n]`` with text ``text_index[n]``."""
    core = core_model(model)
    selected = type(vision)(
        fpn_hidden_states=tuple(t.index_select(0, image_index) for t in vision.fpn_hidden_states),
        fpn_position_encoding=tuple(t.index_select(0, image_index) for t in vision.fpn_position_encoding),
    )
    text = BaseModelOutputWithPooling(pooler_output=text_features.index_select(0, text_index))
    out = core(vision_embeds=selected, text_embeds=text, attention_mask=text_mask.index_select(0, text_index))
    return PairOutputs(
        logits=out.pred_logits,
        presence=out.presence_logits.reshape(-1),
        boxes=out.pred_boxes,
        masks=out.pred_masks,
    )
