"""`samlora demo --quick` end to end: LoRA beats the vanilla reference model on site A; the base is untouched."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from samlora.cli import main
from samlora.demo.run import PROMPTS, SITES, weights_digest
from samlora.models.presets import REFERENCE_PRESET, preset_folder

MARGIN = 0.20
"""LoRA's least mean-Dice gain over vanilla on site A's test split (the quick demo, single click).

Measured: vanilla 0.224, LoRA 0.620 (+0.396) with ``samlora demo --quick`` (this session)."""


def test_quick_demo_lora_beats_vanilla_and_leaves_the_base_bit_identical(
    tmp_path: Path, capsys: pytest.CaptureFixture, caplog: pytest.LogCaptureFixture
) -> None:
    reference = preset_folder(REFERENCE_PRESET)
    before = weights_digest(reference)
    out = tmp_path / "demo"
    caplog.set_level(logging.INFO, logger="samlora.demo.estimate")
    assert main(["demo", "--quick", "--output", str(out), "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert "| vanilla |" in printed and "base model weights unchanged: True" in printed
    assert "estimate after 20 steps" in caplog.text and "1 seed(s) x 90 steps" in caplog.text

    summary = json.loads((out / "results.json").read_text())
    assert summary["base_unchanged"] is True
    assert weights_digest(reference) == before
    assert set(summary["dice"]) == {"click_1", "click_3", "click_5", "box"}
    point = summary["dice"]["click_1"]
    assert set(point["vanilla"]) == set(SITES)
    gain = point["lora"]["site_A"]["mean"] - point["vanilla"]["site_A"]
    assert gain >= MARGIN, summary["dice"]
    # more clicks help, NoC@85 is within the click budget, one seed has no spread
    lora = [summary["dice"][f"click_{k}"]["lora"]["site_A"]["mean"] for k in (1, 3, 5)]
    assert lora[2] >= lora[0] and point["lora"]["site_A"]["std"] is None
    assert 1 <= summary["noc85"]["lora"]["site_A"]["mean"] <= summary["noc85"]["clicks"] == 5
    retention = summary["retention"]
    assert retention["vanilla_exact"] is True  # the adapter switched off is the base model, exactly
    assert {s["verdict"] for s in retention["box"]["seeds"]} <= {"drop", "kept", "gain"}
    for prompt in ("box", "clicks"):  # the table's means and its paired difference describe the same Dice
        row = retention[prompt]
        paired = row["seeds"][0]["mean"]
        assert row["lora"]["seeds"][0] - row["vanilla"] == pytest.approx(paired, abs=1e-9)

    # what the demo promises to write
    assert 0 < summary["adapter_bytes"] < 4 * 2**20  # LoRA + the fully trained mask decoder, fp32
    total = json.loads((reference / "pretrain.json").read_text())["parameters"]
    assert 0 < summary["trainable_parameters"] < 0.25 * total
    readme = (out / "README.md").read_text()
    tables = [line for line in readme.splitlines() if line.startswith("| vanilla |")]
    assert len(tables) == 2 and "| LoRA, 5 clicks |" in readme and "NoC@85" in readme  # one click, box
    assert "± 0.000" not in readme and "Retention" in readme
    assert (out / "runs" / "seed_1" / "loss_curve.png").is_file()
    assert (out / "runs" / "seed_1" / "best" / "adapter_model.safetensors").is_file()
    for prompt in PROMPTS:
        assert (out / f"eval_{prompt}" / "report.html").is_file()
        assert list((out / f"eval_{prompt}" / "panels").rglob("*.png")), (
            "image | truth | LoRA | vanilla panels"
        )
    for site in SITES:
        assert (out / "data" / site / "test" / "images").is_dir()


def test_demo_without_arguments_writes_into_samlora_demo(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """`samlora demo` with no flags (the README's first command) uses the documented defaults."""
    import samlora.demo.run as demo_run

    calls = []

    def fake_run_demo(output, quick=False, device="auto", seed=0, steps=None):
        calls.append((str(output), quick, device, steps))
        Path(output).mkdir(parents=True)
        (Path(output) / "README.md").write_text("| vanilla | table |\n")
        return {"base_unchanged": True}

    monkeypatch.setattr(demo_run, "run_demo", fake_run_demo)
    monkeypatch.chdir(tmp_path)
    assert main(["demo"]) == 0
    assert calls == [("samlora-demo", False, "auto", None)]
    assert "| vanilla | table |" in capsys.readouterr().out
    assert main(["demo", "--steps", "40", "--output", "short"]) == 0  # shorter training
    assert calls[-1] == ("short", False, "auto", 40)
    assert main(["demo", "--steps", "0"]) == 2
