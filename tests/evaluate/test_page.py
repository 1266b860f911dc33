"""report.html: self-contained (inline images, nothing fetched), markdown tables as HTML, renders in Chromium."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from samlora.evaluate.draw import panel
from samlora.evaluate.page import markdown_html
from samlora.evaluate.promptable import ObjectResult
from samlora.evaluate.report import summarize_results, write_report

CHROMIUM = next(
    (p for p in ("/usr/bin/chromium", shutil.which("chromium") or "") if p and Path(p).exists()), None
)


def test_markdown_html_renders_what_reports_hold():
    html = markdown_html(
        "# title\n\nSome `code` and **a drop**.\n\n| a | b |\n|---|---|\n| 1 < 2 | x |\n\n- one\n  - nested\n"
    )
    assert "<h1>title</h1>" in html and "<code>code</code>" in html and "<strong>a drop</strong>" in html
    assert "<th>a</th><th>b</th>" in html and "<td>1 &lt; 2</td>" in html  # escaped
    assert "<li>one</li>" in html and 'margin-left:1.5em">nested' in html


def small_report(out: Path):
    rng = np.random.default_rng(0)
    results = []
    for model, shift in (("vanilla", 0.0), ("s1", 0.3), ("s2", 0.25)):
        for i in range(6):
            ious = list(np.clip(np.linspace(0.3, 0.95, 5) + shift - 0.2 + rng.normal(0, 0.05, 5), 0, 1))
            u = ious[-1]
            results.append(
                ObjectResult(
                    model,
                    "site",
                    f"im{i}.png",
                    0,
                    1,
                    50,
                    2 * u / (1 + u),
                    u,
                    0.5,
                    2.0,
                    [2 * v / (1 + v) for v in ious],
                    ious,
                )  # fmt: skip
            )
    settings = {"prompt": "clicks", "prompt_text": "interactive clicks", "split": "test", "base_model": "samlora-reference",
                "mask_threshold": 0.0, "samlora_version": "0", "retain": ["site"]}  # fmt: skip
    report = summarize_results(results, ["vanilla", "s1", "s2"], ["site"], retain=["site"], settings=settings)
    tile = np.zeros((40, 40, 3), np.uint8)
    panel([("image", tile), ("s1", tile)], path=out / "panels" / "site" / "s1" / "worst_01_im0.png")
    report.panels = [{"dataset": "site", "ranked_by": "s1", "kind": "worst", "rank": 1, "image": "im0.png",
                      "file": "panels/site/s1/worst_01_im0.png"}]  # fmt: skip
    write_report(report, out)
    return report


def test_report_html_is_self_contained(tmp_path: Path) -> None:
    small_report(tmp_path)
    page = (tmp_path / "report.html").read_text()
    assert page.startswith("<!doctype html>") and "<script" not in page and 'src="http' not in page
    assert page.count('src="data:image/png;base64,') == 3  # distributions, mean ± CI bars, click curves
    assert page.count('src="data:image/jpeg;base64,') == 1  # the panel
    for text in ("Prompt: interactive clicks", "Paired differences", "Retention on the base model", "NoC@85"):
        assert text in page, text


@pytest.mark.skipif(
    CHROMIUM is None, reason="headless Chromium not installed (Debian: apt-get install chromium)"
)
def test_report_html_renders_in_headless_chromium(tmp_path: Path) -> None:
    small_report(tmp_path)
    shot = tmp_path / "shot.png"
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", "--window-size=1200,3200", f"--screenshot={shot}",
             (tmp_path / "report.html").as_uri()],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
    pixels = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    assert pixels.shape[:2] == (3200, 1200)
    rows = np.flatnonzero((pixels < 200).any(axis=(1, 2)))  # rows holding text, tables or figures
    assert len(rows) > 600 and rows.max() > 1400  # the page is drawn down to the figures, not blank
    colourful = np.abs(pixels - pixels.mean(axis=2, keepdims=True)).max(axis=2) > 40
    assert colourful.sum() > 2000  # the plots' coloured marks rendered from the inline images
