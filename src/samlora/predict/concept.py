"""Text-prompt prediction of SAM 3: every instance of every text in one encoded image."""

from __future__ import annotations

import torch
from torch import nn

from samlora.models.concept import decode_pairs, encode_texts
from samlora.models.loading import LoadedModel
from samlora.tasks.postprocess import PostProcess, postprocess


@torch.no_grad()
def predict_concepts(
    model: nn.Module,
    loaded: LoadedModel,
    vision: object,
    texts: list[str],
    size: tuple[int, int],
    post: PostProcess,
    image: int = 0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every instance of every text in one encoded image, post-processed, at the original resolution.

    Returns ``K x H x W`` bool masks, ``K`` scores and ``K`` text indices.
    """
    pre = loaded.preprocessing
    device = vision.fpn_hidden_states[0].device
    features, mask = encode_texts(model, loaded, texts, device)
    n = len(texts)
    out = decode_pairs(
        model,
        vision,
        torch.full((n,), image, device=device, dtype=torch.long),
        features,
        mask,
        torch.arange(n, device=device),
    )
    scores = out.scores()
    geom = pre.geometry(*size)
    all_masks, all_scores, all_labels = [], [], []
    for t in range(n):
        keep = scores[t] >= post.threshold
        if not keep.any():
            continue
        logits = pre.logits_to_original(out.masks[t][keep].float(), geom)
        all_masks.append(logits > post.mask_threshold)
        all_scores.append(scores[t][keep])
        all_labels.append(torch.full((int(keep.sum()),), t, device=device, dtype=torch.long))
    if not all_masks:
        empty = torch.zeros(0, *size, dtype=torch.bool, device=device)
        return empty, torch.zeros(0, device=device), torch.zeros(0, dtype=torch.long, device=device)
    masks, scores_k, labels, _ = postprocess(
        torch.cat(all_masks), torch.cat(all_scores), torch.cat(all_labels), post
    )
    return masks, scores_k, labels
