"""An opt-in attention path for SAM's vision encoder: FlexAttention with decomposed relative positions.

SAM and SAM-HQ add a decomposed relative-position term to every attention score of the vision
encoder: ``rel_h[q, row(k)] + rel_w[q, col(k)]`` (MViTv2). transformers materialises it as a dense
``B x heads x N x N`` bias and hands it to ``scaled_dot_product_attention`` as ``attn_mask``; with
``N = 64 x 64`` tokens in the global layers of a 1024-px ViT-B that bias is 12 x 4096 x 4096 floats
per image and layer, and an arbitrary float mask keeps PyTorch's flash kernel from being used.

:func:`use_flex_attention` replaces those layers' forward with FlexAttention, whose score modifier
adds the two small terms (``N x h`` and ``N x w``) inside the kernel, so the bias never exists.
On CUDA the kernel is compiled (``torch.compile(flex_attention)``); elsewhere FlexAttention's
reference implementation runs (correct, not fast): it is opt-in (``model.attention: flex``) until
measured faster on a GPU (``benchmarks/gpu_suite.py`` runs SAM ViT-B both ways).
"""

from __future__ import annotations

import types
import warnings
from functools import lru_cache

import torch
from torch import nn

ATTENTION_CLASSES = (
    "SamVisionAttention",
    "SamVisionSdpaAttention",
    "SamHQVisionAttention",
    "SamHQVisionSdpaAttention",
)
"""The vision-encoder attention modules with decomposed relative positions (SAM, SAM-HQ)."""


@lru_cache(maxsize=2)
def _kernel(device_type: str):
    from torch.nn.attention.flex_attention import flex_attention

    if device_type == "cuda":
        return torch.compile(flex_attention, dynamic=False)
    return flex_attention


def flex_forward(self: nn.Module, hidden_states: torch.Tensor, output_attentions: bool = False):
    """``SamVisionAttention.forward`` on ``B x h x w x C`` tokens (a window or the whole grid),
    through FlexAttention; returns ``(B x h x w x C, None)`` like the SDPA path."""
    batch, height, width, _ = hidden_states.shape
    heads = self.num_attention_heads
    qkv = self.qkv(hidden_states).reshape(batch, height * width, 3, heads, -1).permute(2, 0, 3, 1, 4)
    query, key, value = qkv.unbind(0)  # B x heads x N x c
    score_mod = None
    if self.use_rel_pos:
        rows = self.get_rel_pos(height, height, self.rel_pos_h)  # h x h x c
        cols = self.get_rel_pos(width, width, self.rel_pos_w)  # w x w x c
        grid = query.reshape(batch, heads, height, width, -1)
        rel_h = torch.einsum("bnhwc,hkc->bnhwk", grid, rows).reshape(batch, heads, height * width, height)
        rel_w = torch.einsum("bnhwc,wkc->bnhwk", grid, cols).reshape(batch, heads, height * width, width)

        def score_mod(score, b, h, q_index, k_index):
            return score + rel_h[b, h, q_index, k_index // width] + rel_w[b, h, q_index, k_index % width]

    with warnings.catch_warnings():  # the unfused reference path off CUDA says so on every call
        warnings.filterwarnings("ignore", message=".*flex_attention called without torch.compile.*")
        out = _kernel(query.device.type)(query, key, value, score_mod=score_mod)
    out = out.view(batch, heads, height, width, -1).permute(0, 2, 3, 1, 4).reshape(batch, height, width, -1)
    return self.proj(out), None


def use_flex_attention(model: nn.Module) -> int:
    """Route every SAM / SAM-HQ vision attention layer of ``model`` through :func:`flex_forward`;
    returns how many layers were changed (0: the model has none, e.g. SAM 2 or SAM 3)."""
    changed = 0
    for module in model.modules():
        if type(module).__name__ in ATTENTION_CLASSES:
            module.forward = types.MethodType(flex_forward, module)
            changed += 1
    return changed


def flex_attention_for(loaded, device: torch.device) -> None:
    """``model.attention: flex`` for training on ``device``: switch the layers, or say why not."""
    from samlora.errors import ConfigError

    if device.type != "cuda":
        raise ConfigError(
            [
                f"model.attention flex trains on CUDA only (PyTorch's FlexAttention has no backward on "
                f"{device.type}); use model.attention sdpa here"
            ]
        )
    if not use_flex_attention(loaded.model):
        raise ConfigError(
            [
                f"model.attention flex applies to the decomposed relative positions of SAM and SAM-HQ's vision "
                f"encoder; {loaded.spec.name} has none: use model.attention sdpa"
            ]
        )
