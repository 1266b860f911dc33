"""Training end to end on tiny models: files, prompts, resume, and every setting having its effect."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from samlora.cli import main
from samlora.config import config_from_dict
from samlora.data.synthetic import write_mask_dataset
from samlora.errors import ConfigError, DataError
from samlora.training.checkpoints import Checkpoints
from samlora.training.log import read_log
from samlora.training.trainer import TrainingError, train


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_mask_dataset(tmp_path_factory.mktemp("shapes"), n_train=6, n_valid=2, n_test=2, seed=1)


def cfg_for(model_dir: Path, data_root: Path, out: Path, **sections) -> object:
    base = {
        "model": {"name": str(model_dir)},
        "lora": {
            "rank": 2,
            "components": ["vision_encoder"],
            "target_modules": ["all-linear"],
            "train_fully": ["mask_decoder"],
        },
        "data": {"root": str(data_root)},
        "train": {
            "max_steps": 4,
            "batch_size": 2,
            "num_workers": 0,
            "log_every": 1,
            "lr": 1e-3,
            "trackers": ["none"],
        },
        "output": {"dir": str(out)},
    }
    for section, values in sections.items():
        base.setdefault(section, {}).update(values)
    return config_from_dict(base)


def poison_loss_at(call: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the promptable task's ``call``-th training loss NaN (the NaN guard's input)."""
    from samlora.tasks.promptable.task import PromptableTask

    original = PromptableTask.train_loss
    calls = {"n": 0}

    def poisoned(self, *args):
        loss, terms = original(self, *args)
        calls["n"] += 1
        return (loss * float("nan"), terms) if calls["n"] == call else (loss, terms)

    monkeypatch.setattr(PromptableTask, "train_loss", poisoned)


def train_losses(run: Path) -> list[float]:
    return [r["loss"] for r in read_log(run) if r["split"] == "train"]


def test_cli_train_writes_the_run_folder(tiny_dirs: dict[str, Path], data: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    code = main(
        [
            "train", "--model.name", str(tiny_dirs["sam"]), "--data.root", str(data), "--output.dir", str(out),
            "--train.max_steps", "4", "--train.batch_size", "2", "--train.num_workers", "0", "--train.eval_every", "2",
            "--train.log_every", "1", "--prompts.correction_clicks", "1", "--lora.train_fully", "[mask_decoder]",
            "--train.trackers", "[tensorboard]",
        ]
    )  # fmt: skip
    assert code == 0
    for name in ("config.yaml", "metrics.jsonl", "loss_curve.png", "state/trainer_state.json"):
        assert (out / name).is_file(), name
    for folder in ("best", "last"):
        assert {"adapter_config.json", "adapter_model.safetensors", "samlora.json"} <= {
            p.name for p in (out / folder).iterdir()
        }
    meta = json.loads((out / "best" / "samlora.json").read_text())
    assert meta["family"] == "sam" and meta["step"] in (2, 4) and "dice" in meta["metrics"]
    peft_config = json.loads((out / "best" / "adapter_config.json").read_text())
    assert peft_config["base_model_name_or_path"] == str(tiny_dirs["sam"])  # model.name as configured
    records = read_log(out)
    train_rec = [r for r in records if r["split"] == "train"]
    valid_rec = [r for r in records if r["split"] == "valid"]
    assert [r["step"] for r in train_rec] == [1, 2, 3, 4] and [r["step"] for r in valid_rec] == [2, 4]
    assert {"loss", "loss_dice", "loss_focal", "loss_iou", "lr", "images_per_s"} <= set(train_rec[0])
    assert {"loss", "dice", "iou"} <= set(valid_rec[0])
    assert any(p.name.startswith("events.out.tfevents") for p in out.rglob("*"))
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary folders left


@pytest.mark.parametrize("mode", ["box", "points", "box+points"])
@pytest.mark.parametrize("family", ["sam", "sam2", "sam_hq", "sam3_tracker"])
def test_every_prompt_type_and_family(
    tiny_dirs: dict[str, Path], data: Path, tmp_path: Path, mode: str, family: str
) -> None:
    cfg = cfg_for(
        tiny_dirs[family],
        data,
        tmp_path / "run",
        prompts={"modes": [mode], "correction_clicks": 1},
        train={"max_steps": 2},
    )
    result = train(cfg)
    assert result.steps == 2 and (result.last_dir / "adapter_model.safetensors").is_file()
    assert all(torch.isfinite(torch.tensor(train_losses(result.run_dir))))


@pytest.mark.parametrize("resolution", ["input", "original"])
def test_loss_resolutions(tiny_dirs: dict[str, Path], data: Path, tmp_path: Path, resolution: str) -> None:
    result = train(
        cfg_for(tiny_dirs["sam"], data, tmp_path / "run", loss={"resolution": resolution, "boundary": 1.0})
    )
    assert result.steps == 4
    assert "loss_boundary" in read_log(result.run_dir)[0]


@pytest.mark.parametrize("cut", ["end-of-epoch", "mid-epoch", "between-last-and-state"])
def test_resume_gives_the_same_losses(
    tiny_dirs: dict[str, Path], data: Path, tmp_path: Path, monkeypatch, cut: str
) -> None:
    # 6 training images in batches of 2: 3 steps an epoch; eval_every 3 saves at an epoch's end,
    # eval_every 2 saves in the middle of one (the resumed run then opens an extra loader mid-epoch)
    eval_every = 3 if cut == "end-of-epoch" else 2
    settings = {
        "train": {"max_steps": 7, "eval_every": eval_every, "batch_size": 2},
        "lora": {"dropout": 0.1},
        "augment": {"hflip": 0.5},
    }
    full = train(cfg_for(tiny_dirs["sam"], data, tmp_path / "full", **settings))
    if cut == "between-last-and-state":  # killed after the second save wrote last/ but not state/
        import samlora.training.checkpoints as checkpoints

        original_save, saves = checkpoints.save_state, []

        def killed_before_second_state(*args, **kwargs):
            saves.append(1)
            if len(saves) == 2:
                raise KeyboardInterrupt
            return original_save(*args, **kwargs)

        monkeypatch.setattr(checkpoints, "save_state", killed_before_second_state)
        last_step = 2 * eval_every
    else:  # killed right after the first save
        original = Checkpoints.save

        def killed_after_first_save(self, *args, **kwargs):
            original(self, *args, **kwargs)
            raise KeyboardInterrupt

        monkeypatch.setattr(Checkpoints, "save", killed_after_first_save)
        last_step = eval_every
    with pytest.raises(KeyboardInterrupt):
        train(cfg_for(tiny_dirs["sam"], data, tmp_path / "cut", **settings))
    monkeypatch.undo()
    assert json.loads((tmp_path / "cut" / "last" / "samlora.json").read_text())["step"] == last_step
    assert main(["train", "--resume", str(tmp_path / "cut")]) == 0  # the CLI path
    assert [r["step"] for r in read_log(tmp_path / "cut") if r["split"] == "train"] == list(range(1, 8))
    assert train_losses(tmp_path / "cut") == pytest.approx(
        train_losses(tmp_path / "full"), rel=1e-5, abs=1e-6
    )
    a = (full.last_dir / "adapter_model.safetensors").read_bytes()
    b = (tmp_path / "cut" / "last" / "adapter_model.safetensors").read_bytes()
    assert a == b


def test_grad_accum_changes_optimizer_steps(tiny_dirs: dict[str, Path], data: Path, tmp_path: Path) -> None:
    one = train(
        cfg_for(tiny_dirs["sam"], data, tmp_path / "a", train={"max_steps": 0, "epochs": 1, "grad_accum": 1})
    )
    two = train(
        cfg_for(tiny_dirs["sam"], data, tmp_path / "b", train={"max_steps": 0, "epochs": 1, "grad_accum": 3})
    )
    assert (one.steps, two.steps) == (3, 1)


def test_grad_clip_bounds_the_gradient(
    tiny_dirs: dict[str, Path], data: Path, tmp_path: Path, monkeypatch
) -> None:
    norms: list[float] = []
    step = torch.optim.AdamW.step

    def recording_step(self, *args, **kwargs):
        grads = [p.grad for group in self.param_groups for p in group["params"] if p.grad is not None]
        norms.append(float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]))))
        return step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.AdamW, "step", recording_step)
    train(cfg_for(tiny_dirs["sam"], data, tmp_path / "clip", train={"grad_clip": 1e-3, "lr": 1.0}))
    assert norms and max(norms) <= 1e-3 * 1.001
    norms.clear()
    train(cfg_for(tiny_dirs["sam"], data, tmp_path / "noclip", train={"grad_clip": 0.0, "lr": 1.0}))
    assert max(norms) > 1e-3


@pytest.mark.parametrize(("precision", "dtype"), [("no", torch.float32), ("bf16", torch.bfloat16)])
def test_precision_sets_the_autocast_dtype(
    tiny_dirs: dict[str, Path], data: Path, tmp_path: Path, monkeypatch, precision: str, dtype: torch.dtype
) -> None:
    import samlora.tasks.promptable.segmenter as promptable

    seen: list[torch.dtype] = []
    original = promptable.decode

    def spy(*args, **kwargs):
        out = original(*args, **kwargs)
        seen.append(out.logits.dtype)
        return out

    monkeypatch.setattr(promptable, "decode", spy)
    train(cfg_for(tiny_dirs["sam"], data, tmp_path / "p", train={"precision": precision, "max_steps": 1}))
    assert seen and seen[0] == dtype


@pytest.mark.parametrize("schedule", ["cosine", "constant", "linear"])
def test_schedule_changes_the_learning_rate(
    tiny_dirs: dict[str, Path], data: Path, tmp_path: Path, schedule: str
) -> None:
    run = train(
        cfg_for(
            tiny_dirs["sam"],
            data,
            tmp_path / "s",
            train={"schedule": schedule, "warmup_steps": 2, "max_steps": 6},
        )
    )
    lrs = [r["lr"] for r in read_log(run.run_dir) if r["split"] == "train"]
    assert lrs[0] == pytest.approx(5e-4) and lrs[1] == pytest.approx(1e-3)  # linear warm-up over 2 steps
    if schedule == "constant":
        assert lrs[2:] == pytest.approx([1e-3] * 4)
    else:
        assert lrs[2] == pytest.approx(1e-3) and all(a > b for a, b in zip(lrs[2:], lrs[3:]))
        expected_last = {"cosine": 0.5 * (1 + math.cos(math.pi * 3 / 4)), "linear": 1 - 3 / 4}[
            schedule
        ] * 1e-3
        assert lrs[-1] == pytest.approx(expected_last)


def test_nan_loss_stops_with_step_and_checkpoint(
    tiny_dirs: dict[str, Path], data: Path, tmp_path: Path, monkeypatch
) -> None:
    poison_loss_at(3, monkeypatch)
    with pytest.raises(TrainingError, match=r"step 3 .*last good checkpoint is .*last \(step 2\)"):
        train(cfg_for(tiny_dirs["sam"], data, tmp_path / "nan", train={"eval_every": 1}))
    assert json.loads((tmp_path / "nan" / "last" / "samlora.json").read_text())["step"] == 2
    poison_loss_at(1, monkeypatch)  # NaN at the first step: there is no checkpoint to name
    with pytest.raises(TrainingError, match=r"step 1 .*No checkpoint was saved") as err:
        train(cfg_for(tiny_dirs["sam"], data, tmp_path / "nan1", train={"eval_every": 1}))
    assert "last good" not in str(err.value) and not (tmp_path / "nan1" / "last").exists()


@pytest.mark.parametrize("grad_clip", [1.0, 0.0])
def test_non_finite_gradient_stops_without_saving(
    tiny_dirs: dict[str, Path], data: Path, tmp_path: Path, monkeypatch, grad_clip: float
) -> None:
    from samlora.tasks.promptable.task import PromptableTask

    original = PromptableTask.train_loss
    calls = {"n": 0}

    def infinite_gradient(self, module, *args):
        loss, terms = original(self, module, *args)
        calls["n"] += 1
        if calls["n"] == 3:  # sqrt at 0: the value stays finite, its gradient is not
            zero = sum(p.sum() for p in module.parameters() if p.requires_grad) * 0.0
            loss = loss + torch.sqrt(zero)
        return loss, terms

    monkeypatch.setattr(PromptableTask, "train_loss", infinite_gradient)
    cfg = cfg_for(tiny_dirs["sam"], data, tmp_path / "run", train={"eval_every": 1, "grad_clip": grad_clip})
    with pytest.raises(TrainingError, match=r"gradient norm became nan at step 3"):
        train(cfg)
    assert json.loads((tmp_path / "run" / "last" / "samlora.json").read_text())["step"] == 2


def test_refuses_to_overwrite_a_run(tiny_dirs: dict[str, Path], data: Path, tmp_path: Path) -> None:
    train(cfg_for(tiny_dirs["sam"], data, tmp_path / "run", train={"max_steps": 1}))
    with pytest.raises(TrainingError, match="--resume"):
        train(cfg_for(tiny_dirs["sam"], data, tmp_path / "run", train={"max_steps": 1}))


def test_refuses_data_with_errors(tiny_dirs: dict[str, Path], tmp_path: Path) -> None:
    data = write_mask_dataset(tmp_path / "bad", n_train=3, n_valid=0, seed=2)
    (data / "train" / "images" / "case_001.png").write_bytes(b"not an image")
    with pytest.raises(DataError, match="case_001.png"):
        train(cfg_for(tiny_dirs["sam"], data, tmp_path / "run"))


def test_without_validation_best_equals_last(tiny_dirs: dict[str, Path], tmp_path: Path, caplog) -> None:
    data = write_mask_dataset(tmp_path / "noval", n_train=4, n_valid=0, seed=3)
    result = train(cfg_for(tiny_dirs["sam"], data, tmp_path / "run", data={"val_fraction": 0.0}))
    assert "no 'valid' split" in caplog.text
    assert (result.best_dir / "adapter_model.safetensors").read_bytes() == (
        result.last_dir / "adapter_model.safetensors"
    ).read_bytes()


def test_early_stopping(tiny_dirs: dict[str, Path], data: Path, tmp_path: Path, monkeypatch, caplog) -> None:
    from samlora.tasks.promptable.task import PromptableTask

    dice = iter([0.5, 0.6, 0.55, 0.58, 0.9, 0.95])  # best at step 2, then 2 validations without improvement

    def scripted(self, *args):
        return {"loss": 1.0, "dice": next(dice), "iou": 0.5, "objects": 2.0}

    monkeypatch.setattr(PromptableTask, "validate", scripted)
    out = tmp_path / "es"
    caplog.set_level("INFO", logger="samlora")
    result = train(
        cfg_for(tiny_dirs["sam"], data, out, train={"max_steps": 30, "eval_every": 1, "patience": 2})
    )
    assert result.steps == 4 and result.best_value == pytest.approx(0.6)
    assert "early stopping at step 4: dice did not improve on 0.6000 in 2 validations" in caplog.text
    assert json.loads((out / "best" / "samlora.json").read_text())["step"] == 2
    assert json.loads((out / "last" / "samlora.json").read_text())["step"] == 4
    resumed = train(None, resume=out)  # nothing more to do, and it says so
    assert resumed.steps == 4 and "already stopped early at step 4" in caplog.text
    assert max(r["step"] for r in read_log(out)) == 4


def test_logged_terms_average_the_accumulated_micro_batches(
    tiny_dirs: dict[str, Path], data: Path, tmp_path: Path, monkeypatch
) -> None:
    from samlora.tasks.promptable.task import PromptableTask

    original = PromptableTask.train_loss
    losses: list[float] = []

    def numbered(self, *args):
        loss, terms = original(self, *args)
        losses.append(float(loss.detach()))
        return loss, {**terms, "probe": torch.tensor(float(len(losses)))}

    monkeypatch.setattr(PromptableTask, "train_loss", numbered)
    run = train(
        cfg_for(
            tiny_dirs["sam"], data, tmp_path / "acc", train={"max_steps": 0, "epochs": 1, "grad_accum": 3}
        )
    )
    (record,) = [r for r in read_log(run.run_dir) if r["split"] == "train"]
    assert record["probe"] == pytest.approx(2.0)  # mean of micro-batches 1, 2, 3
    assert record["loss"] == pytest.approx(sum(losses) / 3, rel=1e-5)


def test_records_epochs_throughput_and_atomic_files(
    tiny_dirs: dict[str, Path], data: Path, tmp_path: Path, monkeypatch
) -> None:
    import os
    from types import SimpleNamespace

    import samlora.training.trainer as trainer
    from samlora.tasks.promptable.task import PromptableTask

    clock = {"t": 0.0}

    def perf_counter() -> float:  # a clock where training takes 0.01 s a reading and validation 1000 s
        clock["t"] += 0.01
        return clock["t"]

    original, replaced = PromptableTask.validate, []
    real_replace = os.replace

    def slow(self, *args):
        clock["t"] += 1000.0
        return original(self, *args)

    def spy_replace(src, dst):
        replaced.append(Path(dst).name)
        return real_replace(src, dst)

    monkeypatch.setattr(trainer, "time", SimpleNamespace(perf_counter=perf_counter))
    monkeypatch.setattr(PromptableTask, "validate", slow)
    monkeypatch.setattr(os, "replace", spy_replace)
    # 3 steps an epoch: validating at step 3 ends epoch 0; the valid row says epoch 0 like the train row
    run = train(cfg_for(tiny_dirs["sam"], data, tmp_path / "r", train={"max_steps": 4, "eval_every": 3}))
    records = read_log(run.run_dir)
    epochs = {(r["split"], r["step"]): r["epoch"] for r in records}
    assert epochs[("valid", 3)] == epochs[("train", 3)] == 0 and epochs[("train", 4)] == 1
    after = next(r for r in records if r["split"] == "train" and r["step"] == 4)
    assert after["images_per_s"] > 1.0  # 8 images in well under 1 s of training; 1000 s would give < 0.01
    assert {"config.yaml", "loss_curve.png"} <= set(replaced)  # written to a temporary file, then renamed


def test_data_cache_decodes_once(tiny_dirs: dict[str, Path], data: Path, tmp_path: Path, monkeypatch) -> None:
    import samlora.data.decode as decode

    calls = {"n": 0}
    original = decode.load_sample

    def counting(*args, **kwargs):
        calls["n"] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(decode, "load_sample", counting)
    train(cfg_for(tiny_dirs["sam"], data, tmp_path / "cached", data={"cache": True}, train={"max_steps": 6}))
    cached = calls["n"]
    calls["n"] = 0
    train(cfg_for(tiny_dirs["sam"], data, tmp_path / "plain", train={"max_steps": 6}))
    assert cached == 6 + 2  # every train and valid image once (the data check decodes through its own path)
    assert calls["n"] > cached


@pytest.mark.parametrize("family", ["sam", "sam3_tracker"])
def test_gradient_checkpointing_gives_the_same_training(
    tiny_dirs: dict[str, Path], data: Path, tmp_path: Path, family: str
) -> None:
    plain = train(cfg_for(tiny_dirs[family], data, tmp_path / "plain", train={"max_steps": 2}))
    ckpt = train(
        cfg_for(
            tiny_dirs[family],
            data,
            tmp_path / "ckpt",
            model={"gradient_checkpointing": True},
            train={"max_steps": 2},
        )
    )
    assert train_losses(ckpt.run_dir) == pytest.approx(train_losses(plain.run_dir), rel=1e-4)


def cli_args(model: Path, data_root: Path, out: Path, *extra: str) -> list[str]:
    return [
        "train", "--model.name", str(model), "--data.root", str(data_root), "--output.dir", str(out),
        "--train.max_steps", "1", "--train.batch_size", "2", "--train.num_workers", "0",
        "--train.trackers", "[none]", *extra,
    ]  # fmt: skip


def test_a_failed_start_leaves_nothing_and_the_retry_runs(
    tiny_dirs: dict[str, Path], data: Path, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "run"
    assert main(cli_args(tiny_dirs["sam"], tmp_path / "no_such_data", out)) == 2
    assert not (out / "config.yaml").exists()
    assert main(cli_args(tiny_dirs["sam"], data, out)) == 0  # the retry is not refused as "a run"
    assert (out / "state" / "trainer_state.json").is_file()
    # a folder with only a config.yaml (a start that failed) holds no run either
    (tmp_path / "failed").mkdir()
    (tmp_path / "failed" / "config.yaml").write_text((out / "config.yaml").read_text())
    assert main(cli_args(tiny_dirs["sam"], data, tmp_path / "failed")) == 0
    capsys.readouterr()
    assert main(cli_args(tiny_dirs["sam"], data, out)) == 2  # a real run is still protected
    assert "--resume" in capsys.readouterr().err


def test_overwrite_removes_the_old_run(
    tiny_dirs: dict[str, Path], data: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    from samlora.tasks.promptable.task import PromptableTask

    out = tmp_path / "run"
    assert main(cli_args(tiny_dirs["sam"], data, out, "--train.eval_every", "1")) == 0
    assert {"state", "last", "best", "metrics.jsonl", "loss_curve.png"} <= {p.name for p in out.iterdir()}

    def killed(self, *args):
        raise KeyboardInterrupt  # the new run dies before its first checkpoint

    monkeypatch.setattr(PromptableTask, "train_loss", killed)
    new = cli_args(tiny_dirs["sam"], data, out, "--output.overwrite", "true", "--lora.rank", "4")
    assert main(new) == 130
    assert {p.name for p in out.iterdir()} == {"config.yaml"}  # the old run's state, weights, log are gone
    assert "rank: 4" in (out / "config.yaml").read_text()
    monkeypatch.undo()
    # nothing of the old run is continued by mistake: the new run (rank 4) starts again from step 0
    assert main(["train", "--resume", str(out)]) == 0
    assert json.loads((out / "last" / "adapter_config.json").read_text())["r"] == 4
    assert [r["step"] for r in read_log(out) if r["split"] == "train"] == [1]


def test_best_metric_of_another_task_is_a_config_error(
    tiny_dirs: dict[str, Path], data: Path, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "run"
    assert main(cli_args(tiny_dirs["sam"], data, out, "--train.best_metric", "mAP")) == 2
    err = capsys.readouterr().err
    assert "train.best_metric 'mAP'" in err and "dice, iou or val_loss" in err
    assert not out.exists() or not list(out.iterdir())


def test_fp16_on_cpu_is_refused(tiny_dirs: dict[str, Path], data: Path, tmp_path: Path, capsys) -> None:
    args = cli_args(
        tiny_dirs["sam"], data, tmp_path / "run", "--train.precision", "fp16", "--train.device", "cpu"
    )
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "train.precision is fp16" in err and "bf16" in err
    assert not (tmp_path / "run").exists() or not list((tmp_path / "run").iterdir())


@pytest.mark.parametrize(("tracker", "package"), [("wandb", "wandb"), ("mlflow", "mlflow")])
def test_a_tracker_that_is_not_installed_is_an_error(
    tiny_dirs: dict[str, Path], data: Path, tmp_path: Path, monkeypatch, tracker: str, package: str
) -> None:
    import samlora.training.trackers as trackers

    monkeypatch.setattr(trackers, "_installed", lambda module: module != package)
    with pytest.raises(ConfigError, match=f"pip install {package}"):
        train(cfg_for(tiny_dirs["sam"], data, tmp_path / "run", train={"trackers": [tracker]}))
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_seed_changes_the_run_and_repeats_it(tiny_dirs: dict[str, Path], data: Path, tmp_path: Path) -> None:
    runs = {
        name: train(cfg_for(tiny_dirs["sam"], data, tmp_path / name, train={"seed": seed, "max_steps": 2}))
        for name, seed in (("a", 0), ("b", 0), ("c", 1))
    }
    weights = {n: (r.last_dir / "adapter_model.safetensors").read_bytes() for n, r in runs.items()}
    assert train_losses(tmp_path / "a") == train_losses(tmp_path / "b") and weights["a"] == weights["b"]
    assert train_losses(tmp_path / "a") != train_losses(tmp_path / "c") and weights["a"] != weights["c"]


def test_weight_decay_shrinks_the_weights(tiny_dirs: dict[str, Path], data: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    lr, wd = 1e-3, 1.0
    plain, decayed = (
        load_file(
            train(
                cfg_for(
                    tiny_dirs["sam"],
                    data,
                    tmp_path / str(w),
                    train={"weight_decay": w, "lr": lr, "max_steps": 1},
                )
            ).last_dir
            / "adapter_model.safetensors"
        )
        for w in (0.0, wd)
    )
    # AdamW decouples the decay: w_decayed = w_plain - lr * wd * w_before, and Adam's first step moves
    # each weight by about lr, so (w_plain - w_decayed) / (lr * wd) is w_decayed within ~lr
    checked = 0
    for name, w in decayed.items():
        if w.abs().max() > 0.05:
            assert torch.allclose((plain[name] - w) / (lr * wd), w, atol=3 * lr), name
            checked += 1
    assert checked > 0


def test_num_workers_decode_in_workers_with_the_same_result(
    tiny_dirs: dict[str, Path], data: Path, tmp_path: Path, monkeypatch
) -> None:
    import os

    from samlora.tasks.promptable.data import PromptableDataset

    pids = tmp_path / "pids.txt"
    original = PromptableDataset.__getitem__

    def recording(self, index):
        with pids.open("a") as f:
            f.write(f"{os.getpid()}\n")
        return original(self, index)

    monkeypatch.setattr(PromptableDataset, "__getitem__", recording)
    train(cfg_for(tiny_dirs["sam"], data, tmp_path / "w0", train={"num_workers": 0, "max_steps": 2}))
    assert set(pids.read_text().split()) == {str(os.getpid())}
    pids.unlink()
    train(cfg_for(tiny_dirs["sam"], data, tmp_path / "w2", train={"num_workers": 2, "max_steps": 2}))
    assert str(os.getpid()) not in set(pids.read_text().split())  # decoded in worker processes
    assert train_losses(tmp_path / "w2") == pytest.approx(train_losses(tmp_path / "w0"), rel=1e-6)
