"""Training at the hardware's pace, end to end: the decoded cache, device augmentation, the
frozen-encoder embedding cache and the step without host syncs keep every result."""

from __future__ import annotations

from pathlib import Path

import pytest

from samlora.cli import main
from samlora.data.synthetic import write_mask_dataset
from samlora.training.checkpoints import Checkpoints
from samlora.training.log import read_log
from samlora.training.trainer import TrainingError, train

from .test_trainer import cfg_for, poison_loss_at, train_losses

AUGMENT = {
    "hflip": 0.5,
    "rot90": 0.3,
    "scale_min": 0.7,
    "scale_max": 1.5,
    "crop": 0.5,
    "brightness": 0.2,
    "hue": 0.05,
}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_mask_dataset(tmp_path_factory.mktemp("pipeline"), n_train=6, n_valid=2, seed=4)


def killed_after_first_save_then_resumed(cfg, monkeypatch: pytest.MonkeyPatch) -> None:
    """Train ``cfg`` until its first checkpoint is written, stop it there, resume it through the CLI."""
    original = Checkpoints.save

    def killed_after_first_save(self, *args, **kwargs):
        original(self, *args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(Checkpoints, "save", killed_after_first_save)
    with pytest.raises(KeyboardInterrupt):
        train(cfg)
    monkeypatch.undo()
    assert main(["train", "--resume", cfg.output.dir]) == 0


@pytest.mark.parametrize("store", ["memory", "disk"])
def test_resume_repeats_the_run_with_cache_and_device_augmentation(
    tiny_dirs: dict[str, Path], data: Path, tmp_path: Path, monkeypatch, store: str
) -> None:
    settings = {
        "train": {"max_steps": 5, "eval_every": 2, "log_every": 1},
        "augment": AUGMENT,
        "data": {
            "cache": True,
            "cache_memory_mb": 4096 if store == "memory" else 0,
            "cache_dir": str(tmp_path / "c"),
        },
    }
    full = train(cfg_for(tiny_dirs["sam"], data, tmp_path / "full", **settings))
    assert (store == "disk") == bool(list((tmp_path / "c").rglob("*.safetensors")))
    killed_after_first_save_then_resumed(
        cfg_for(tiny_dirs["sam"], data, tmp_path / "cut", **settings), monkeypatch
    )
    assert train_losses(tmp_path / "cut") == pytest.approx(train_losses(full.run_dir), rel=1e-5, abs=1e-6)
    assert (full.last_dir / "adapter_model.safetensors").read_bytes() == (
        tmp_path / "cut" / "last" / "adapter_model.safetensors"
    ).read_bytes()


def test_frozen_encoder_encodes_each_image_once_with_the_same_losses(
    tiny_dirs: dict[str, Path], data: Path, tmp_path: Path, monkeypatch
) -> None:
    import samlora.tasks.promptable.embeddings as embeddings
    import samlora.tasks.promptable.segmenter as segmenter

    encoded = {"cache": 0, "step": 0}
    for module, key in ((embeddings, "cache"), (segmenter, "step")):
        real = module.encode

        def counting(model, spec, pixels, _real=real, _key=key):
            encoded[_key] += pixels.shape[0]
            return _real(model, spec, pixels)

        monkeypatch.setattr(module, "encode", counting)
    frozen = {
        "lora": {"components": ["mask_decoder"], "target_modules": ["all-linear"], "train_fully": []},
        "augment": {"enabled": False},
        "train": {"max_steps": 9, "log_every": 1},  # 3 epochs of 3 steps
    }
    cached = train(cfg_for(tiny_dirs["sam"], data, tmp_path / "cached", **frozen))
    assert encoded == {"cache": 6, "step": 0}  # each training image once, in the first epoch
    plain = train(
        cfg_for(
            tiny_dirs["sam"],
            data,
            tmp_path / "plain",
            **{**frozen, "train": {**frozen["train"], "embedding_cache": "off"}},
        )
    )
    assert encoded["step"] == 18  # re-encoded every epoch without the cache
    assert train_losses(cached.run_dir) == pytest.approx(train_losses(plain.run_dir), rel=1e-5, abs=1e-6)
    encoded.update(cache=0, step=0)
    train(
        cfg_for(
            tiny_dirs["sam"],
            data,
            tmp_path / "aug",
            **{**frozen, "augment": {"hflip": 0.5}, "train": {"max_steps": 2}},
        )
    )
    assert encoded["cache"] == 0 and encoded["step"] == 4  # augmentation does not commute with the encoder


def test_the_nan_guard_reads_back_every_log_every_steps_and_names_the_range(
    tiny_dirs: dict[str, Path], data: Path, tmp_path: Path, monkeypatch
) -> None:
    poison_loss_at(5, monkeypatch)
    cfg = cfg_for(
        tiny_dirs["sam"], data, tmp_path / "run", train={"max_steps": 12, "log_every": 4, "eval_every": 6}
    )
    with pytest.raises(
        TrainingError, match=r"the loss became nan at step 5 \(epoch 1; read back after steps 5-6\)"
    ) as err:
        train(cfg)
    assert "last good checkpoint" not in str(err.value)  # the first save (step 6) comes after the read
    assert not (tmp_path / "run" / "last").exists()
    steps = [r["step"] for r in read_log(tmp_path / "run") if r["split"] == "train"]
    assert steps == [4]  # logged every 4 steps; nothing from the bad steps


def test_workers_live_for_the_run_and_every_epoch_repeats_the_single_process_run(
    tiny_dirs: dict[str, Path], data: Path, tmp_path: Path, monkeypatch
) -> None:
    import torch.utils.data

    started = {"n": 0}
    real = torch.utils.data.DataLoader.__iter__

    def counting(self):
        started["n"] += int(self.persistent_workers and self._iterator is None)  # a new pool of workers
        return real(self)

    monkeypatch.setattr(torch.utils.data.DataLoader, "__iter__", counting)
    settings = {"train": {"max_steps": 9, "log_every": 1, "eval_every": 0}, "augment": AUGMENT}
    alone = train(cfg_for(tiny_dirs["sam"], data, tmp_path / "alone", **settings))
    workers = {**settings, "train": {**settings["train"], "num_workers": 2}}
    pooled = train(cfg_for(tiny_dirs["sam"], data, tmp_path / "pooled", **workers))
    assert started["n"] == 1  # one pool of workers for the three training epochs
    # items depend on the seed, the epoch and the index only: the epoch reaches the workers
    assert train_losses(pooled.run_dir) == pytest.approx(train_losses(alone.run_dir), rel=1e-5, abs=1e-6)
    cached = train(cfg_for(tiny_dirs["sam"], data, tmp_path / "cached", **workers, data={"cache": True}))
    assert started["n"] == 1  # cached items are made in this process: no workers to pass them through
    assert train_losses(cached.run_dir) == pytest.approx(train_losses(alone.run_dir), rel=1e-5, abs=1e-6)
