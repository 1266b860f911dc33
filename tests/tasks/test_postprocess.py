"""``min_area`` in the shared post-processing: whole instances below it go, and so do the specks of kept ones."""

from __future__ import annotations

import torch

from samlora.tasks.postprocess import PostProcess, postprocess


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
