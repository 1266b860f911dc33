"""Metrics against values computed independently: by hand, or by brute force on small masks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist

from samlora.tasks.promptable.metrics import boundary, boundary_f1, dice, dice_iou_batch, hd95, iou


def _box(shape: tuple[int, int], r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
    m = np.zeros(shape, dtype=bool)
    m[r0:r1, c0:c1] = True
    return m


def _brute_boundary(m: np.ndarray) -> np.ndarray:
    """Foreground pixels with a 4-neighbour that is background or outside the image."""
    h, w = m.shape
    out = np.zeros_like(m)
    for r in range(h):
        for c in range(w):
            if not m[r, c]:
                continue
            for dr, dc in ((-1, 0), (1, 0), (0, -1), (0, 1)):
                rr, cc = r + dr, c + dc
                if not (0 <= rr < h and 0 <= cc < w) or not m[rr, cc]:
                    out[r, c] = True
    return out


def _brute_dists(p: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    bp, bt = np.argwhere(_brute_boundary(p)), np.argwhere(_brute_boundary(t))
    d = cdist(bp, bt)  # explicit pairwise Euclidean distances
    return d.min(1), d.min(0)


def _random_blobs(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    m = np.zeros(shape, dtype=bool)
    for _ in range(rng.integers(1, 4)):
        cy, cx = rng.uniform(0, shape[0]), rng.uniform(0, shape[1])
        r = rng.uniform(1.5, 6)
        m |= (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
    if not m.any():
        m[rng.integers(shape[0]), rng.integers(shape[1])] = True
    return m


# --------------------------------------------------------------------------- dice / iou


def test_dice_iou_by_hand_6x6():
    pred = _box((6, 6), 0, 3, 0, 3)  # 9 px
    target = _box((6, 6), 1, 4, 1, 4)  # 9 px, overlap rows 1-2 x cols 1-2 = 4 px
    assert dice(pred, target) == pytest.approx(8 / 18)
    assert iou(pred, target) == pytest.approx(4 / 14)
    assert dice(torch.from_numpy(pred), torch.from_numpy(target)) == pytest.approx(8 / 18)
    assert iou(torch.from_numpy(pred), torch.from_numpy(target)) == pytest.approx(4 / 14)
    assert dice(pred.astype(np.uint8), target.astype(np.int64)) == pytest.approx(8 / 18)
    assert dice(pred, pred) == 1.0 and iou(pred, pred) == 1.0


def test_dice_iou_empty_cases():
    empty = np.zeros((6, 6), dtype=bool)
    full = np.ones((6, 6), dtype=bool)
    assert dice(empty, empty) == 1.0 and iou(empty, empty) == 1.0
    assert dice(full, empty) == 0.0 and iou(empty, full) == 0.0


def test_dice_iou_input_errors():
    with pytest.raises(ValueError, match="same shape"):
        dice(np.zeros((4, 4), bool), np.zeros((4, 5), bool))
    with pytest.raises(TypeError, match="threshold"):
        iou(np.zeros((4, 4)), np.zeros((4, 4), bool))
    with pytest.raises(TypeError, match="threshold"):
        dice_iou_batch(torch.zeros(1, 4, 4), torch.zeros(1, 4, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="N x H x W"):
        dice_iou_batch(torch.zeros(4, 4, dtype=torch.bool), torch.zeros(4, 4, dtype=torch.bool))


def test_dice_iou_batch_matches_scalar_and_hand():
    rng = np.random.default_rng(0)
    preds = [
        _box((6, 6), 0, 3, 0, 3),
        np.zeros((6, 6), bool),
        np.zeros((6, 6), bool),
        rng.random((6, 6)) > 0.5,
    ]
    targets = [
        _box((6, 6), 1, 4, 1, 4),
        np.zeros((6, 6), bool),
        np.ones((6, 6), bool),
        rng.random((6, 6)) > 0.5,
    ]
    p, t = torch.from_numpy(np.stack(preds)), torch.from_numpy(np.stack(targets))
    d, i = dice_iou_batch(p, t)
    assert d.dtype == torch.float32 and d.shape == (4,) and d.device == p.device
    assert d[:3].tolist() == pytest.approx([8 / 18, 1.0, 0.0])
    assert i[:3].tolist() == pytest.approx([4 / 14, 1.0, 0.0])
    inter = np.logical_and(preds[3], targets[3]).sum()
    assert d[3].item() == pytest.approx(2 * inter / (preds[3].sum() + targets[3].sum()))
    assert i[3].item() == pytest.approx(inter / np.logical_or(preds[3], targets[3]).sum())
    d0, i0 = dice_iou_batch(torch.zeros(0, 5, 5, dtype=torch.bool), torch.zeros(0, 5, 5, dtype=torch.bool))
    assert d0.shape == (0,) and i0.shape == (0,)


# --------------------------------------------------------------------------- boundaries


def test_boundary_by_hand():
    m = _box((6, 6), 1, 5, 1, 5)  # 4 x 4 square: a 12-pixel ring around a 2 x 2 interior
    b = boundary(m)
    assert b.sum() == 12
    assert not b[2:4, 2:4].any() and b[1, 1:5].all() and b[4, 1:5].all()
    full = np.ones((6, 6), dtype=bool)  # pixels on the image border are boundary pixels
    assert boundary(full).sum() == 20 and not boundary(full)[1:5, 1:5].any()


def test_hd95_by_hand_single_pixels():
    p, t = np.zeros((6, 6), bool), np.zeros((6, 6), bool)
    p[0, 0], t[3, 4] = True, True
    assert hd95(p, t) == pytest.approx(5.0)
    assert hd95(p, t, reduction="max") == pytest.approx(5.0)
    assert hd95(p, p) == 0.0


def test_hd95_shifted_square_by_hand():
    # two 4 x 4 squares, one shifted right by 2: rings of 12 pixels each.
    p, t = _box((8, 10), 2, 6, 1, 5), _box((8, 10), 2, 6, 3, 7)
    to_t, to_p = _brute_dists(p, t)
    # pred ring: cols 3-4 of the top/bottom rows lie on target's ring (4 px at 0); col 2 of those rows
    # and the right column's middle pixels are 1 px away (4 px); col 1 (4 px) is 2 px away.
    assert sorted(to_t.tolist()) == [0.0] * 4 + [1.0] * 4 + [2.0] * 4
    assert sorted(to_p.tolist()) == [0.0] * 4 + [1.0] * 4 + [2.0] * 4
    # pooled: 24 distances, 8 each of 0, 1, 2; the 95th percentile (index 21.85) is 2
    assert hd95(p, t) == pytest.approx(2.0)
    assert hd95(p, t, reduction="max") == pytest.approx(2.0)


@pytest.mark.parametrize("seed", range(6))
def test_hd95_and_boundary_f1_match_brute_force(seed: int):
    rng = np.random.default_rng(seed)
    shape = (20, 24)
    p, t = _random_blobs(rng, shape), _random_blobs(rng, shape)
    to_t, to_p = _brute_dists(p, t)
    pooled = np.percentile(np.concatenate([to_t, to_p]), 95)
    assert hd95(p, t) == pytest.approx(pooled)
    assert hd95(torch.from_numpy(p), torch.from_numpy(t)) == pytest.approx(pooled)
    assert hd95(p, t, reduction="max") == pytest.approx(max(np.percentile(to_t, 95), np.percentile(to_p, 95)))
    for tol in (0.0, 1.0, 2.0, 3.5):
        prec, rec = np.mean(to_t <= tol), np.mean(to_p <= tol)
        f1 = 0.0 if prec + rec == 0 else 2 * prec * rec / (prec + rec)
        assert boundary_f1(p, t, tolerance_px=tol) == pytest.approx(f1)


def test_boundary_metrics_crop_does_not_change_results():
    # masks deep inside a larger image, and masks touching the image border
    rng = np.random.default_rng(7)
    small_p, small_t = _random_blobs(rng, (12, 12)), _random_blobs(rng, (12, 12))
    big_p, big_t = np.zeros((40, 50), bool), np.zeros((40, 50), bool)
    big_p[20:32, 30:42], big_t[20:32, 30:42] = small_p, small_t
    assert hd95(big_p, big_t) == pytest.approx(hd95(small_p, small_t))
    to_t, to_p = _brute_dists(big_p, big_t)
    assert hd95(big_p, big_t) == pytest.approx(np.percentile(np.concatenate([to_t, to_p]), 95))
    edge_p, edge_t = _box((10, 10), 0, 6, 0, 10), _box((10, 10), 0, 4, 2, 10)
    to_t, to_p = _brute_dists(edge_p, edge_t)
    assert hd95(edge_p, edge_t) == pytest.approx(np.percentile(np.concatenate([to_t, to_p]), 95))
    prec, rec = np.mean(to_t <= 1), np.mean(to_p <= 1)
    assert boundary_f1(edge_p, edge_t, 1.0) == pytest.approx(2 * prec * rec / (prec + rec))


def test_boundary_f1_by_hand():
    p = _box((8, 8), 2, 6, 2, 6)
    assert boundary_f1(p, p, tolerance_px=0) == 1.0
    shifted = _box((8, 8), 2, 6, 3, 7)
    # tolerance 1 px: every boundary pixel of one square is within 1 px of the other's boundary
    assert boundary_f1(p, shifted, tolerance_px=1.0) == 1.0
    # tolerance 0: only shared pixels match: top and bottom rows, cols 3-5 (6 of 12 px) -> P = R = 0.5
    assert boundary_f1(p, shifted, tolerance_px=0.0) == pytest.approx(0.5)


def test_boundary_metrics_empty_cases():
    empty, m = np.zeros((6, 6), bool), _box((6, 6), 1, 4, 1, 4)
    assert boundary_f1(empty, empty) == 1.0
    assert boundary_f1(m, empty) == 0.0 and boundary_f1(empty, m) == 0.0
    assert math.isnan(hd95(empty, empty)) and math.isnan(hd95(m, empty)) and math.isnan(hd95(empty, m))
    with pytest.raises(ValueError, match="tolerance"):
        boundary_f1(m, m, tolerance_px=-1)
    with pytest.raises(ValueError, match="reduction"):
        hd95(m, m, reduction="mean")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- summaries
