"""samlora eval: adapter vs vanilla on identical prompts, tables over adapters and data sets, reports, panels."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from samlora.cli import main
from samlora.config import config_from_dict
from samlora.data.synthetic import write_mask_dataset
from samlora.training.trainer import train


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_mask_dataset(tmp_path_factory.mktemp("shapes"), n_train=4, n_valid=2, n_test=3, seed=5)


@pytest.fixture(scope="module")
def runs(tiny_dirs: dict[str, Path], data: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two adapters (seeds); the first trains long enough to overfit the four training images."""
    out = []
    for seed, steps in ((1, 80), (2, 20)):
        cfg = config_from_dict(
            {
                "model": {"name": str(tiny_dirs["sam"])},
                "lora": {"rank": 8, "alpha": 8, "components": ["vision_encoder"], "target_modules": ["all-linear"], "train_fully": ["mask_decoder"]},
                "data": {"root": str(data)},
                "prompts": {"modes": ["box"], "box_jitter": 0.0},
                "augment": {"hflip": 0.0},
                "train": {"max_steps": steps, "batch_size": 2, "lr": 5e-3, "num_workers": 0, "seed": seed, "eval_every": 50, "trackers": ["none"], "warmup_steps": 5},
                "output": {"dir": str(tmp_path_factory.mktemp(f"run{seed}") / "run")},
            }
        )  # fmt: skip
        out.append(train(cfg).run_dir)
    return out


def test_adapter_beats_vanilla_on_overfitted_images(
    runs: list[Path], data: Path, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "eval"
    code = main(
        ["eval", str(runs[0]), "--datasets", str(data), "--split", "train", "--base", "--output", str(out)]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "| vanilla |" in printed and "| run |" in printed
    report = json.loads((out / "report.json").read_text())
    assert report["models"] == ["vanilla", "run"] and report["datasets"] == [data.name]
    dice = {m: report["per_image"][m][data.name]["dice"]["mean"] for m in report["models"]}
    assert dice["run"] > dice["vanilla"] + 0.2, dice
    assert report["per_image"]["run"][data.name]["dice"]["n"] == 4
    for name in ("report.md", "per_image.csv", "per_object.csv"):
        assert (out / name).is_file()
    objects = {m: report["per_object"][m][data.name]["dice"]["n"] for m in report["models"]}
    md = (out / "report.md").read_text()
    for model, n in objects.items():  # HD95 leaves empty predictions out: their count is shown
        assert f"- {model} on {data.name}: " in md and f" of {n} objects with an empty prediction" in md
    rows = list(csv.DictReader((out / "per_object.csv").open()))
    assert {r["model"] for r in rows} == {"vanilla", "run"}
    assert all(0.0 <= float(r["dice"]) <= 1.0 and 0.0 <= float(r["boundary_f1"]) <= 1.0 for r in rows)
    areas: dict[str, int] = {}  # area: ground-truth pixels of each object at the original resolution
    for row in (r for r in rows if r["model"] == "run"):
        assert int(row["area"]) > 0, row
        areas[row["image"]] = areas.get(row["image"], 0) + int(row["area"])
    for image, area in areas.items():  # the objects of a binary mask are its connected components
        assert area == int((np.asarray(Image.open(data / image.replace("images", "masks"))) > 0).sum())
    panels = sorted((out / "panels" / data.name / "run").glob("*.png"))
    assert any(p.name.startswith("worst_") for p in panels) and any(
        p.name.startswith("best_") for p in panels
    )
    assert "Prompt: each object's tight bounding box (`eval.prompt box`)." in md and "split `train`" in md
    assert "| run − vanilla |" in md  # the paired difference, with its CI and Wilcoxon p
    paired = report["paired"][0]
    assert (paired["model"], paired["against"], paired["n"]) == ("run", "vanilla", 4)
    assert paired["ci_low"] <= paired["mean"] <= paired["ci_high"] and 0 <= paired["p"] <= 1
    assert paired["mean"] == pytest.approx(dice["run"] - dice["vanilla"])
    page = (out / "report.html").read_text()
    assert page.count("data:image/") >= 2 + len(panels)
    assert 'src="http' not in page and "<script" not in page and "<link" not in page  # self-contained


def test_table_over_seeds_and_datasets(
    runs: list[Path], data: Path, tmp_path: Path, tiny_dirs: dict[str, Path]
) -> None:
    other = write_mask_dataset(tmp_path / "site_b", n_train=0, n_valid=0, n_test=2, seed=9)
    out = tmp_path / "eval"
    args = [
        "eval",
        str(runs[0] / "best"),
        str(runs[1] / "best"),
        "--datasets",
        str(data),
        str(other),
        "--base",
        "--output",
        str(out),
        "--eval.panels",
        "0",
    ]
    assert main(args) == 0
    report = json.loads((out / "report.json").read_text())
    assert len(report["models"]) == 3 and report["models"][0] == "vanilla"
    assert report["datasets"] == [data.name, other.name]
    assert set(report["adapters_mean_std"]) == {data.name, other.name}
    assert report["adapters_mean_std"][data.name]["n"] == 2
    md = (out / "report.md").read_text()
    assert "adapters: mean ± std over 2" in md
    assert not (out / "panels").exists()


def test_data_sets_with_the_same_folder_name_stay_apart(runs: list[Path], tmp_path: Path) -> None:
    site_a = write_mask_dataset(tmp_path / "hospA" / "data", n_train=0, n_valid=0, n_test=2, seed=11)
    site_b = write_mask_dataset(tmp_path / "hospB" / "data", n_train=0, n_valid=0, n_test=3, seed=12)
    out = tmp_path / "eval"
    args = ["eval", str(runs[0]), "--datasets", str(site_a), str(site_b), "--output", str(out)]
    assert main(args + ["--eval.panels", "0"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["datasets"] == ["hospA/data", "hospB/data"]
    counts = [report["per_image"]["run"][name]["dice"]["n"] for name in report["datasets"]]
    assert counts == [2, 3]


def test_seeded_split_does_not_follow_the_training_seed(tmp_path: Path) -> None:
    """Runs with different train.seed must share one test split, or eval over seeds would test
    some adapters on their own training images."""
    from samlora.data.layout import open_split
    from samlora.tasks.common import mask_options

    flat = write_mask_dataset(tmp_path / "flat", n_train=12, n_valid=0, n_test=0, seed=3)
    split_dir = next(p for p in flat.iterdir() if p.is_dir())
    for child in split_dir.iterdir():  # images/ and masks/ directly under the root: no split folders
        child.rename(flat / child.name)
    split_dir.rmdir()

    def test_ids(**sections) -> list:
        cfg = config_from_dict(
            {
                "data": {"root": str(flat), "test_fraction": 0.25, **sections.get("data", {})},
                **{k: v for k, v in sections.items() if k != "data"},
            }
        )
        return [r.image_id for r in open_split(flat, "test", "auto", **mask_options(cfg)).images]

    assert test_ids(train={"seed": 1}) == test_ids(train={"seed": 2}) and len(test_ids()) == 3
    assert test_ids(data={"split_seed": 1}) != test_ids(data={"split_seed": 2})


@pytest.mark.parametrize("prompt", ["box", "center_point", "points", "clicks"])
def test_prompt_modes(runs: list[Path], data: Path, tmp_path: Path, prompt: str) -> None:
    out = tmp_path / prompt
    args = [
        "eval",
        str(runs[0]),
        "--datasets",
        str(data),
        "--eval.prompt",
        prompt,
        "--eval.clicks",
        "3",
        "--output",
        str(out),
        "--eval.panels",
        "0",
    ]
    assert main(args) == 0
    report = json.loads((out / "report.json").read_text())
    assert 0.0 <= report["per_image"]["run"][data.name]["dice"]["mean"] <= 1.0
    clicks = report["dice_per_click"]
    assert (len(clicks["run"][data.name]) == 3) if prompt == "clicks" else not clicks


def test_data_test_split_names_the_split_eval_reads(runs: list[Path], data: Path, tmp_path: Path) -> None:
    def images(*extra: str) -> int:
        out = tmp_path / "_".join(extra or ("default",))
        args = ["eval", str(runs[0]), "--datasets", str(data), "--output", str(out), "--eval.panels", "0"]
        assert main(args + list(extra)) == 0
        return json.loads((out / "report.json").read_text())["per_image"]["run"][data.name]["dice"]["n"]

    assert images() == 3  # test split
    assert images("--data.test_split", "valid") == 2
    assert images("--data.test_split", "valid", "--split", "train") == 4  # --split wins


def test_eval_needs_something(tmp_path: Path, capsys) -> None:
    assert main(["eval", "--datasets", str(tmp_path)]) == 2
    assert "nothing to evaluate" in capsys.readouterr().err


def flat_folder(root: Path, n: int = 6) -> Path:
    """``images/`` + ``masks/`` directly in ``root``: no split folders, no split lists."""
    flat = write_mask_dataset(root, n_train=n, n_valid=0, n_test=0, seed=3)
    split_dir = next(p for p in flat.iterdir() if p.is_dir())
    for child in split_dir.iterdir():
        child.rename(flat / child.name)
    split_dir.rmdir()
    return flat


def test_split_all_evaluates_a_flat_folder_and_the_hint_says_how(
    runs: list[Path], tmp_path: Path, capsys
) -> None:
    flat = flat_folder(tmp_path / "flat")
    args = [
        "eval",
        str(runs[0]),
        "--datasets",
        str(flat),
        "--eval.panels",
        "0",
        "--output",
        str(tmp_path / "e"),
    ]
    assert main(args + ["--split", "test"]) == 2
    err = capsys.readouterr().err
    assert "has no 'test' split" in err and "data.test_fraction" in err and "--split all" in err
    assert main(args + ["--split", "all"]) == 0
    report = json.loads((tmp_path / "e" / "report.json").read_text())
    assert report["per_image"]["run"]["flat"]["dice"]["n"] == 6 and report["settings"]["split"] == "all"


def test_retain_compares_on_the_home_domain_and_vanilla_is_the_base_exactly(
    runs: list[Path], data: Path, tmp_path: Path, tiny_dirs: dict[str, Path], capsys
) -> None:
    home = write_mask_dataset(tmp_path / "home", n_train=0, n_valid=0, n_test=3, seed=21)
    out = tmp_path / "eval"
    common = ["--eval.panels", "0", "--eval.prompt", "clicks", "--eval.clicks", "3"]
    args = [
        "eval",
        str(runs[0]),
        "--datasets",
        str(data),
        "--retain",
        str(home),
        "--base",
        "--output",
        str(out),
    ]
    assert main(args + common) == 0
    printed = capsys.readouterr().out
    assert "| home | run |" in printed and "NoC@85" in printed
    report = json.loads((out / "report.json").read_text())
    assert report["datasets"] == [data.name, "home"] and report["settings"]["retain"] == ["home"]
    [row] = report["retention"]
    assert (row["model"], row["against"], row["dataset"], row["n"]) == ("run", "vanilla", "home", 3)
    want = "drop" if row["ci_high"] < 0 else ("gain" if row["ci_low"] > 0 else "kept")
    assert row["verdict"] == want
    md = (out / "report.md").read_text()
    assert "## Retention on the base model's home domain" in md and "| home | run |" in md
    assert (
        set(report["clicks"]["run"]) == {data.name, "home"}
        and len(report["clicks"]["run"]["home"]["iou"]) == 3
    )

    # the adapter switched off is the base model: a base-only evaluation gives the vanilla figures exactly
    alone = tmp_path / "alone"
    base_only = [
        "eval",
        "--base",
        "--model.name",
        str(tiny_dirs["sam"]),
        "--datasets",
        str(home),
        "--output",
        str(alone),
    ]
    assert main(base_only + common) == 0
    vanilla = [
        r
        for r in csv.DictReader((out / "per_object.csv").open())
        if r["model"] == "vanilla" and r["dataset"] == "home"
    ]
    plain = list(csv.DictReader((alone / "per_object.csv").open()))
    assert [(r["image"], r["dice"], r["iou"]) for r in vanilla] == [
        (r["image"], r["dice"], r["iou"]) for r in plain
    ]

    assert (
        main(["eval", str(runs[0]), "--datasets", str(data), "--retain", str(home), "--output", str(out)])
        == 2
    )
    assert (
        "--retain compares the adapters with the vanilla base model there: add --base"
        in capsys.readouterr().err
    )
