"""Summary statistics: Student-t confidence intervals by hand, nan handling, summaries per metric."""

from __future__ import annotations

import math
import pickle

import pytest
import torch

from samlora.evaluate.statistics import mean_ci, summarize


def test_mean_ci_by_hand():
    values = [1.0, 2.0, 3.0, 4.0]
    # mean 2.5; sample sd sqrt(5/3); sem sd/2; t(0.975, df=3) = 3.182446305 (t-table)
    half = 3.182446305 * math.sqrt(5 / 3) / 2
    mean, low, high = mean_ci(values)
    assert mean == pytest.approx(2.5)
    assert low == pytest.approx(2.5 - half, rel=1e-8) and high == pytest.approx(2.5 + half, rel=1e-8)
    ci90 = mean_ci(values, confidence=0.90)  # t(0.95, df=3) = 2.353363435
    assert ci90.high - ci90.mean == pytest.approx(2.353363435 * math.sqrt(5 / 3) / 2, rel=1e-8)
    assert mean_ci(values).n == 4
    again = pickle.loads(pickle.dumps(mean_ci(values)))
    assert tuple(again) == tuple(mean_ci(values)) and again.n == 4


def test_mean_ci_nan_and_small_n():
    ci = mean_ci([1.0, float("nan"), 3.0])
    assert ci.n == 2 and ci.mean == pytest.approx(2.0)
    half = 12.70620474 * math.sqrt(2.0) / math.sqrt(2)  # t(0.975, df=1); sd of {1, 3} = sqrt(2)
    assert ci.low == pytest.approx(2.0 - half, rel=1e-7)
    one = mean_ci([0.7, float("nan")])
    assert tuple(one) == (0.7, 0.7, 0.7) and one.n == 1
    none = mean_ci([float("nan")])
    assert none.n == 0 and all(math.isnan(v) for v in none)
    assert mean_ci(torch.tensor([1.0, 3.0])).mean == pytest.approx(2.0)
    with pytest.raises(ValueError, match="confidence"):
        mean_ci([1.0, 2.0], confidence=95)


def test_summarize():
    out = summarize({"dice": [0.5, 0.7, 0.9], "hd95": [2.0, float("nan"), 4.0], "none": []})
    assert set(out) == {"dice", "hd95", "none"}
    d = out["dice"]
    assert d["mean"] == pytest.approx(0.7) and d["n"] == 3 and d["n_nan"] == 0
    assert d["std"] == pytest.approx(0.2)
    half = 4.30265273 * 0.2 / math.sqrt(3)  # t(0.975, df=2)
    assert d["ci_low"] == pytest.approx(0.7 - half, rel=1e-7) and d["ci_high"] == pytest.approx(
        0.7 + half, rel=1e-7
    )
    h = out["hd95"]
    assert h["mean"] == pytest.approx(3.0) and h["n"] == 2 and h["n_nan"] == 1
    assert out["none"]["n"] == 0 and math.isnan(out["none"]["mean"]) and math.isnan(out["none"]["std"])
    assert summarize({"x": [5.0]})["x"]["std"] == 0.0
