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


def test_paired_difference_equals_scipy_on_a_test_vector():
    import numpy as np
    from scipy import stats

    from samlora.evaluate.statistics import paired_difference

    adapter = [0.91, 0.85, 0.78, 0.88, 0.95, 0.70, 0.82, 0.90]
    vanilla = [0.80, 0.86, 0.60, 0.75, 0.90, 0.72, 0.65, 0.81]
    d = np.subtract(adapter, vanilla)
    got = paired_difference(adapter, vanilla, resamples=2000, seed=3)
    assert got["n"] == 8 and got["mean"] == pytest.approx(float(d.mean()))
    want = stats.bootstrap(
        (d,), np.mean, n_resamples=2000, method="percentile", random_state=np.random.default_rng(3)
    ).confidence_interval
    assert (got["ci_low"], got["ci_high"]) == pytest.approx((want.low, want.high))
    assert got["ci_low"] < got["mean"] < got["ci_high"]
    assert got["p"] == pytest.approx(stats.wilcoxon(d).pvalue)
    # by hand: five positive differences of distinct sizes -> exact two-sided p = 2 / 2**5
    assert paired_difference([1.0, 2, 3, 4, 5], [0.0] * 5)["p"] == pytest.approx(0.0625)
    assert paired_difference(adapter, vanilla, seed=3) == paired_difference(adapter, vanilla, seed=3)


def test_paired_difference_identical_models_nan_and_mismatch():
    from samlora.evaluate.statistics import paired_difference

    same = paired_difference([0.5, 0.7, 0.9], [0.5, 0.7, 0.9])
    assert same == {"n": 3, "confidence": 0.95, "mean": 0.0, "ci_low": 0.0, "ci_high": 0.0, "p": 1.0}
    dropped = paired_difference([0.5, float("nan"), 0.9, 0.4], [0.4, 0.7, float("nan"), 0.1])
    assert dropped["n"] == 2 and dropped["mean"] == pytest.approx(0.2)
    one = paired_difference([0.9], [0.5])
    assert one["n"] == 1 and one["ci_low"] == one["ci_high"] == pytest.approx(0.4) and math.isnan(one["p"])
    with pytest.raises(ValueError, match="pair up"):
        paired_difference([1.0, 2.0], [1.0])
