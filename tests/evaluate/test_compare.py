"""Comparisons between report rows: click curves and NoC by hand, paired rows, retention verdicts."""

from __future__ import annotations

import pytest

from samlora.evaluate.compare import click_summary, compare_models, paired_comparisons, retention
from samlora.evaluate.promptable import ObjectResult
from samlora.evaluate.report import summarize_results


def result(
    model: str, image: str, dice: float, ious: list[float] | None = None, dataset: str = "ds"
) -> ObjectResult:
    ious = ious or []
    return ObjectResult(
        model=model, dataset=dataset, image=image, object=0, category_id=1, area=10,
        dice=dice, iou=ious[-1] if ious else dice, boundary_f1=0.5, hd95=1.0,
        dice_per_click=[2 * u / (1 + u) for u in ious], iou_per_click=ious,
    )  # fmt: skip


def test_click_curve_and_noc_by_hand():
    rows = [
        result("a", "x", 0.9, [0.50, 0.86, 0.91]),  # NoC@85 2, NoC@90 3
        result("a", "y", 0.5, [0.20, 0.30, 0.40]),  # never: 3 and 3 (capped), failed at both
        result("a", "z", 0.9, [0.95, 0.80, 0.90]),  # at once: 1 and 1
    ]
    c = click_summary(rows, "a", "ds")
    assert c["clicks"] == 3 and c["objects"] == 3
    assert c["iou"] == pytest.approx([0.55, 1.96 / 3, 2.21 / 3])
    assert c["dice"][0] == pytest.approx((2 * 0.5 / 1.5 + 2 * 0.2 / 1.2 + 2 * 0.95 / 1.95) / 3)
    assert c["noc85"] == pytest.approx((2 + 3 + 1) / 3) and c["noc90"] == pytest.approx((3 + 3 + 1) / 3)
    assert (c["failed85"], c["failed90"]) == (1, 1)
    assert click_summary([result("a", "x", 0.9)], "a", "ds") is None  # not clicks mode

    report = summarize_results(rows, ["a"], ["ds"])
    table = report.clicks_table()
    assert (
        "| a | ds | 0.658 | 0.824 | 0.550 | 0.737 | 2.00 | 2.33 | 1 | 1 | 3 |" in table
    )  # @1 and @3 of 3 clicks


def test_paired_rows_pair_images_and_cover_every_pair():
    rows = [result(m, i, d) for m, i, d in [
        ("vanilla", "x", 0.2), ("vanilla", "y", 0.4), ("vanilla", "z", 0.1),
        ("s1", "x", 0.7), ("s1", "y", 0.9), ("s1", "z", 0.8),
        ("s2", "x", 0.6), ("s2", "y", 0.9),  # s2 misses image z: pairs use x and y only
    ]]  # fmt: skip
    row = compare_models(rows, "s1", "vanilla", "ds")
    assert row["n"] == 3 and row["mean"] == pytest.approx((0.5 + 0.5 + 0.7) / 3)
    assert compare_models(rows, "s2", "s1", "ds")["n"] == 2
    pairs = [(r["model"], r["against"]) for r in paired_comparisons(rows, ["vanilla", "s1", "s2"], ["ds"])]
    assert pairs == [("s1", "vanilla"), ("s2", "vanilla"), ("s1", "s2")]


def test_retention_flags_a_drop_beyond_the_ci():
    paired = [
        {
            "model": "a",
            "against": "vanilla",
            "dataset": "home",
            "mean": -0.10,
            "ci_low": -0.15,
            "ci_high": -0.05,
        },
        {
            "model": "b",
            "against": "vanilla",
            "dataset": "home",
            "mean": -0.01,
            "ci_low": -0.04,
            "ci_high": 0.02,
        },
        {
            "model": "c",
            "against": "vanilla",
            "dataset": "home",
            "mean": 0.05,
            "ci_low": 0.01,
            "ci_high": 0.09,
        },
        {
            "model": "a",
            "against": "vanilla",
            "dataset": "target",
            "mean": -0.2,
            "ci_low": -0.3,
            "ci_high": -0.1,
        },
        {"model": "a", "against": "b", "dataset": "home", "mean": -0.2, "ci_low": -0.3, "ci_high": -0.1},
    ]
    verdicts = [(r["model"], r["verdict"]) for r in retention(paired, ["home"])]
    assert verdicts == [("a", "drop"), ("b", "kept"), ("c", "gain")]
