"""Summaries of per-image (or per-object, per-seed) metric values: mean, Student-t CI, std, and
the paired comparison of two models on the same images (bootstrap CI + Wilcoxon signed-rank).

nan values (for example HD95 of an empty prediction) are left out of every statistic and
counted, so a model that misses objects is never flattered silently.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import numpy as np
import torch
from scipy import stats

__all__ = ["MeanCI", "mean_ci", "paired_difference", "summarize"]


class MeanCI(tuple):
    """``(mean, low, high)`` of a confidence interval; ``n`` is the number of values used.

    Unpacks as a 3-tuple: ``mean, low, high = mean_ci(values)``.
    """

    n: int

    def __new__(cls, mean: float, low: float, high: float, n: int) -> MeanCI:
        self = super().__new__(cls, (mean, low, high))
        self.n = n
        return self

    def __getnewargs__(self) -> tuple[float, float, float, int]:  # pickle / copy keep ``n``
        return (self[0], self[1], self[2], self.n)

    @property
    def mean(self) -> float:
        return self[0]

    @property
    def low(self) -> float:
        return self[1]

    @property
    def high(self) -> float:
        return self[2]

    def __repr__(self) -> str:
        return f"MeanCI(mean={self[0]!r}, low={self[1]!r}, high={self[2]!r}, n={self.n})"


def _drop_nan(values: Iterable[float] | np.ndarray | torch.Tensor) -> tuple[np.ndarray, int]:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().double().numpy()
    arr = np.asarray(list(values) if not isinstance(values, np.ndarray) else values, dtype=np.float64).ravel()
    keep = ~np.isnan(arr)
    return arr[keep], int(arr.size - keep.sum())


def mean_ci(values: Iterable[float] | np.ndarray | torch.Tensor, confidence: float = 0.95) -> MeanCI:
    """Mean and two-sided Student-t confidence interval of ``values``, nan-safe.

    ``nan`` values are dropped; ``.n`` of the result counts those kept. The interval
    is ``mean -/+ t.ppf((1 + confidence) / 2, n - 1) * s / sqrt(n)`` with ``s`` the
    sample standard deviation (ddof=1). ``n == 1`` gives ``low == high == mean``;
    ``n == 0`` gives nan for all three.
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    arr, _ = _drop_nan(values)
    n = int(arr.size)
    if n == 0:
        return MeanCI(math.nan, math.nan, math.nan, 0)
    mean = float(arr.mean())
    if n == 1:
        return MeanCI(mean, mean, mean, 1)
    sem = float(arr.std(ddof=1)) / math.sqrt(n)
    half = float(stats.t.ppf((1 + confidence) / 2, df=n - 1)) * sem
    return MeanCI(mean, mean - half, mean + half, n)


def summarize(
    values_by_metric: Mapping[str, Iterable[float] | np.ndarray | torch.Tensor], confidence: float = 0.95
) -> dict[str, dict[str, float | int]]:
    """Per metric: ``mean``, ``ci_low``, ``ci_high``, ``std``, ``n``, ``n_nan`` and ``confidence``.

    ``values_by_metric`` maps a metric name to its per-object (or per-image, or
    per-seed) values. nan values (e.g. :func:`hd95` of an empty mask) are left out
    of every statistic and counted in ``n_nan``. ``std`` is the sample standard
    deviation (ddof=1); 0.0 for ``n == 1``, nan for ``n == 0``. The interval is
    that of :func:`mean_ci`.
    """
    out: dict[str, dict[str, float | int]] = {}
    for name, values in values_by_metric.items():
        arr, n_nan = _drop_nan(values)
        ci = mean_ci(arr, confidence)
        std = float(arr.std(ddof=1)) if arr.size > 1 else (0.0 if arr.size == 1 else math.nan)
        out[name] = {
            "mean": ci.mean,
            "ci_low": ci.low,
            "ci_high": ci.high,
            "std": std,
            "n": ci.n,
            "n_nan": n_nan,
            "confidence": confidence,
        }
    return out


BOOTSTRAP_RESAMPLES = 10_000
"""Resamples of the paired bootstrap."""


def paired_difference(
    a: Iterable[float] | np.ndarray,
    b: Iterable[float] | np.ndarray,
    confidence: float = 0.95,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
) -> dict[str, float | int]:
    """Model A minus model B on the same items (images): mean difference, bootstrap CI, Wilcoxon p.

    ``a[i]`` and ``b[i]`` are the two models' values on item ``i``; pairs with a nan on either side
    are dropped. The interval is scipy's percentile bootstrap of the mean difference
    (``scipy.stats.bootstrap``, ``resamples`` resamples drawn from ``numpy.random.default_rng(seed)``,
    so a report is reproducible); ``p`` is the two-sided Wilcoxon signed-rank test of the differences
    (``scipy.stats.wilcoxon``, zero differences dropped). Identical models (every difference 0) give
    ``p = 1`` and a zero-width interval; fewer than two pairs give the difference itself as the
    interval and ``p`` nan.

    Returns:
        ``mean`` (A - B), ``ci_low``, ``ci_high``, ``p``, ``n`` (pairs used), ``confidence``.
    """
    x = np.asarray(list(a) if not isinstance(a, np.ndarray) else a, dtype=np.float64).ravel()
    y = np.asarray(list(b) if not isinstance(b, np.ndarray) else b, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"paired_difference: a and b must pair up, got {x.size} and {y.size} values")
    keep = ~(np.isnan(x) | np.isnan(y))
    d = x[keep] - y[keep]
    n = int(d.size)
    out: dict[str, float | int] = {"n": n, "confidence": confidence}
    if n == 0:
        return out | {"mean": math.nan, "ci_low": math.nan, "ci_high": math.nan, "p": math.nan}
    mean = float(d.mean())
    if n == 1 or np.all(d == d[0]):
        p = 1.0 if np.all(d == 0) else (math.nan if n == 1 else float(stats.wilcoxon(d).pvalue))
        return out | {"mean": mean, "ci_low": mean, "ci_high": mean, "p": p}
    ci = stats.bootstrap(
        (d,), np.mean, confidence_level=confidence, n_resamples=resamples, method="percentile",
        vectorized=True, random_state=np.random.default_rng(seed),
    ).confidence_interval  # fmt: skip
    p = 1.0 if not np.any(d) else float(stats.wilcoxon(d).pvalue)
    return out | {"mean": mean, "ci_low": float(ci.low), "ci_high": float(ci.high), "p": p}
