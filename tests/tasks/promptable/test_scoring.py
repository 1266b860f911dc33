"""The interactive click protocol: where each click goes (hand-made masks), NoC, the loop on a real model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from samlora.data.clicks import PAD_LABEL, correction_clicks
from samlora.models.loading import load_model
from samlora.tasks.promptable import scoring
from samlora.tasks.promptable.data import PromptableSample
from samlora.tasks.promptable.scoring import click_rounds, clicks_to_reach
from samlora.tasks.promptable.segmenter import to_device


def square(size: int = 30) -> torch.Tensor:
    """``1 x size x size`` ground truth: an 11 x 11 square, rows and columns 5..15 (centre pixel 10, 10)."""
    gt = torch.zeros(1, size, size, dtype=torch.bool)
    gt[0, 5:16, 5:16] = True
    return gt


def test_click_sequence_on_hand_made_masks():
    """Click 1 at the centre, click 2 in the missed half, click 3 on a false blob, none when perfect."""
    gt = square()
    empty = torch.zeros_like(gt)  # before click 1 nothing is predicted: the error is the whole object
    points, labels = correction_clicks(empty, gt, mode="center")
    assert labels.item() == 1 and points[0, 0].tolist() == [10.5, 10.5]

    left = torch.zeros_like(gt)
    left[0, 5:16, 5:11] = True  # misses columns 11..15: deepest at column 13, rows 7..13 tie -> row 10
    points, labels = correction_clicks(left, gt, mode="center")
    assert labels.item() == 1 and points[0, 0].tolist() == [13.5, 10.5]

    extra = gt.clone()
    extra[0, 20:27, 20:27] = True  # a 7 x 7 false positive, centre pixel (23, 23)
    points, labels = correction_clicks(extra, gt, mode="center")
    assert labels.item() == 0 and points[0, 0].tolist() == [23.5, 23.5]

    points, labels = correction_clicks(gt.clone(), gt, mode="center")
    assert labels.item() == PAD_LABEL and points[0, 0].tolist() == [0.0, 0.0]

    # a crowd region over the false blob: errors there are not clicked; the missed half is
    ignore = torch.zeros(30, 30, dtype=torch.bool)
    ignore[18:30, 18:30] = True
    both = left | extra
    both[0, 5:16, 11:16] = False
    points, labels = correction_clicks(both, gt, mode="center", ignore=ignore)
    assert labels.item() == 1 and points[0, 0].tolist() == [13.5, 10.5]


def test_noc_by_hand():
    ious = np.array(
        [
            [0.50, 0.86, 0.91, 0.93],  # 85 % at click 2, 90 % at click 3
            [0.20, 0.30, 0.40, 0.84],  # never: capped at 4
            [0.95, 0.80, 0.90, 0.99],  # at click 1 (a later drop does not matter)
            [0.85, 0.85, 0.85, 0.90],  # exactly the threshold counts
        ]
    )
    assert clicks_to_reach(ious, 0.85).tolist() == [2, 4, 1, 1]
    assert clicks_to_reach(ious, 0.90).tolist() == [3, 4, 1, 4]
    assert clicks_to_reach(ious[:, :1], 0.85).tolist() == [1, 1, 1, 1]
    with pytest.raises(ValueError, match="K x N"):
        clicks_to_reach(ious[0], 0.85)


def _sample(masks: np.ndarray, name: str) -> PromptableSample:
    from samlora.data.prompts import center_point, mask_to_box

    k, h, w = masks.shape
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, size=(3, h, w), dtype=np.uint8)
    boxes = np.stack([mask_to_box(m) for m in masks]) if k else np.zeros((0, 4), np.float32)
    centers = np.stack([center_point(m) for m in masks]) if k else np.zeros((0, 2), np.float32)
    return PromptableSample(
        image=torch.from_numpy(image),
        masks=torch.from_numpy(masks),
        ignore=None,
        boxes=torch.as_tensor(boxes).reshape(-1, 4),
        exact_boxes=torch.as_tensor(boxes).reshape(-1, 4),
        points=torch.as_tensor(centers)[:, None].reshape(k, 1, 2),
        labels=torch.ones(k, 1, dtype=torch.int64),
        centers=torch.as_tensor(centers).reshape(-1, 2),
        category_ids=torch.ones(k, dtype=torch.int64),
        image_id=name,
        file_name=name,
    )


def test_click_loop_on_a_model_follows_the_protocol(tiny_dirs: dict[str, Path], monkeypatch) -> None:
    loaded = load_model(str(tiny_dirs["sam"]))
    first = np.zeros((2, 40, 56), dtype=bool)
    first[0, 5:16, 5:16] = True  # centre pixel (10, 10)
    first[1, 20:35, 30:51] = True  # 15 x 21: centre pixel (27, 40)
    samples = [_sample(first, "a.png"), _sample(np.zeros((0, 24, 24), dtype=bool), "empty.png")]
    batch = to_device(samples, loaded.preprocessing, torch.device("cpu"))
    mask_prompts = []
    real_decode = scoring.decode

    def spy(*args, **kwargs):
        mask_prompts.append(kwargs.get("mask_inputs") is not None)
        return real_decode(*args, **kwargs)

    monkeypatch.setattr(scoring, "decode", spy)
    run = click_rounds(loaded.model, loaded, batch, clicks=4)
    assert len(run.logits) == 4 and [r[0].shape for r in run.logits] == [(2, 40, 56)] * 4
    assert run.points[0].shape == (2, 4, 2) and run.labels[0].shape == (2, 4)
    assert run.points[1].shape == (0, 4, 2)  # an image without objects gets no clicks
    assert run.points[0][:, 0].flatten().tolist() == pytest.approx([10.5, 10.5, 40.5, 27.5])
    assert (run.labels[0][:, 0] == 1).all()
    for r in range(1, 4):  # each click corrects the mask of the click before, deterministically
        want_points, want_labels = correction_clicks(run.logits[r - 1][0] > 0, batch.masks[0], mode="center")
        assert torch.equal(run.points[0][:, r : r + 1], want_points)
        assert torch.equal(run.labels[0][:, r : r + 1], want_labels)
    assert mask_prompts == [False, True, True, True]  # the previous low-res mask is fed back
    mask_prompts.clear()
    clicks_only = click_rounds(loaded.model, loaded, batch, clicks=2, feed_mask=False)
    assert mask_prompts == [False, False] and torch.equal(clicks_only.points[0], run.points[0][:, :2])
    again = click_rounds(loaded.model, loaded, batch, clicks=4)
    assert all(torch.equal(a[0], b[0]) for a, b in zip(run.logits, again.logits))
    assert torch.equal(run.points[0], again.points[0])
