"""Shared post-processing: min_area drops small instances and specks; cost grows with what is kept."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

from samlora.predict.predictor import Predictor
from samlora.tasks.postprocess import PostProcess, fill_holes, postprocess


def test_batched_hole_filling_equals_one_mask_at_a_time() -> None:
    masks = np.random.default_rng(0).random((6, 40, 50)) > 0.45
    masks[0] = False
    masks[1, 5:35, 5:45] = True
    masks[1, 15:20, 15:20] = False  # an enclosed hole
    expected = np.stack([ndimage.binary_fill_holes(m) for m in masks])
    np.testing.assert_array_equal(fill_holes(torch.from_numpy(masks)).numpy(), expected)
    assert fill_holes(torch.from_numpy(masks))[1, 17, 17]


def test_only_masks_that_pass_the_threshold_are_upsampled(
    tiny_dirs: dict[str, Path], image: np.ndarray, monkeypatch
) -> None:
    p = Predictor(str(tiny_dirs["sam"]), device="cpu")
    p.set_image(image)
    boxes = [[5, 5, 40, 30], [20, 10, 60, 40], [0, 0, 70, 45], [30, 20, 50, 40]]
    every = p.predict(boxes=boxes)
    threshold = float(np.sort(every.scores)[-2])  # the two best prompts pass
    pre = p.loaded.preprocessing
    upsampled = []
    real = type(pre).logits_to_original

    def counting(self, logits, geom):
        upsampled.append(logits.shape[0])
        return real(self, logits, geom)

    monkeypatch.setattr(type(pre), "logits_to_original", counting)
    kept = p.predict(boxes=boxes, post=PostProcess(threshold=threshold))
    assert upsampled == [2] and kept.prompt_index.tolist() == sorted(np.argsort(every.scores)[-2:].tolist())
    for k, index in enumerate(kept.prompt_index):
        np.testing.assert_array_equal(kept.masks[k], every.masks[index])


def test_min_area_drops_small_instances_and_specks() -> None:
    masks = torch.zeros(3, 12, 12, dtype=torch.bool)
    masks[0, 2:8, 2:8] = True  # 36 px blob ...
    masks[0, 10, 10] = True  # ... with a 1-px speck
    masks[1, 0, 0] = True  # a 1-px instance
    masks[2, 0:2, 9:12] = masks[2, 5, 11] = True  # 6 px + a speck
    scores = torch.tensor([0.9, 0.8, 0.7])
    kept, kept_scores, _, boxes = postprocess(
        masks, scores, None, PostProcess(threshold=0, nms_iou=1, min_area=4)
    )
    assert kept_scores.tolist() == scores[[0, 2]].tolist()
    assert kept.flatten(1).sum(1).tolist() == [36, 6] and boxes[0].tolist() == [2, 2, 8, 8]
    specks = postprocess(
        masks, scores, None, PostProcess(threshold=0, nms_iou=1, min_area=4, keep_specks=True)
    )[0]
    assert specks.flatten(1).sum(1).tolist() == [37, 7]
