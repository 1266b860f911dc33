"""Fault injection on training runs: a kill at every write and rename, a second writer, a reader
during a save, a full disk and a read-only folder, through the internal hook
(:mod:`samlora.io.faults`) and, once, a real SIGKILL.

Every kill is followed by ``samlora train --resume`` (or the original command when the kill came
before the run's config.yaml existed), which must end with the same losses and the same weights
as one uninterrupted reference run, leaving nothing temporary behind.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from samlora.cli import main
from samlora.config import config_from_dict
from samlora.data.synthetic import write_mask_dataset
from samlora.io import faults
from samlora.io.atomic import read_snapshot
from samlora.lora.adapters import WEIGHTS_FILE, read_adapter
from samlora.training.log import read_log
from samlora.training.trainer import train

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def settings(model: Path, data: Path, out: Path) -> dict:
    return {
        "model": {"name": str(model)},
        "lora": {"rank": 2, "target_modules": ["all-linear"], "dropout": 0.1},
        "data": {"root": str(data)},
        "train": {"max_steps": 2, "eval_every": 1, "batch_size": 1, "num_workers": 0, "log_every": 1,
                  "lr": 1e-2, "trackers": ["none"]},
        "output": {"dir": str(out)},
    }  # fmt: skip


def cli(model: Path, data: Path, out: Path) -> list[str]:
    return [
        "train", "--model.name", str(model), "--data.root", str(data), "--output.dir", str(out),
        "--lora.rank", "2", "--lora.target_modules", "[all-linear]", "--lora.dropout", "0.1",
        "--train.max_steps", "2", "--train.eval_every", "1", "--train.batch_size", "1",
        "--train.num_workers", "0", "--train.log_every", "1", "--train.lr", "0.01", "--train.trackers", "[none]",
    ]  # fmt: skip


def outcome(run: Path) -> dict:
    """What must be equal to the uninterrupted run: every record (but timings) and the saved weights."""
    records = [{k: v for k, v in r.items() if k != "images_per_s"} for r in read_log(run)]
    weights = {
        name: hashlib.sha256((run / name / WEIGHTS_FILE).read_bytes()).hexdigest()
        for name in ("last", "best")
    }
    state = hashlib.sha256((run / "state" / "weights.safetensors").read_bytes()).hexdigest()
    return {"records": records, "weights": weights, "state": state}


def leftovers(run: Path) -> list[str]:
    return sorted(p.name for p in run.iterdir() if p.name.startswith("."))


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """These runs are tiny: one thread is several times faster on a busy machine (no spinning)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture()
def no_plot(monkeypatch):
    """The loss-curve picture is written once at the end (atomically, outside the save sequences)
    and is the slowest part of a tiny run; the sweeps leave it out."""
    import samlora.training.trainer as trainer

    monkeypatch.setattr(trainer, "plot_loss_curve", lambda run_dir: None)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_mask_dataset(tmp_path_factory.mktemp("faults-data"), n_train=2, n_valid=1, seed=3, size=32)


class Recorder:
    """A hook that records every point; ``kill_at`` (1-based) stops the sequence there like a kill."""

    def __init__(self, kill_at: int | None = None, on_point=None):
        self.kill_at, self.on_point, self.points = kill_at, on_point, []

    def __call__(self, op: str, path: Path, target: Path | None) -> None:
        self.points.append((op, path.name, target.name if target else None))
        if self.on_point is not None:
            self.on_point(op, path, target)
        if len(self.points) == self.kill_at:
            if op == "write":  # a kill in the middle of writing leaves a torn file
                path.write_bytes(b"\x00torn")
            elif op == "append":
                with open(path, "a") as f:
                    f.write('{"split": "train", "st')
            raise faults.Killed


@pytest.fixture(scope="module")
def reference(tiny_dirs: dict[str, Path], data: Path, tmp_path_factory) -> tuple[dict, list]:
    """The uninterrupted run: its outcome and the points of its save sequences."""
    out = tmp_path_factory.mktemp("reference") / "run"
    recorder = Recorder()
    with faults.injected(recorder):
        train(config_from_dict(settings(tiny_dirs["sam"], data, out)))
    return outcome(out), recorder.points


def test_a_kill_at_every_write_and_rename_resumes_to_the_same_run(
    tiny_dirs: dict[str, Path], data: Path, tmp_path: Path, reference, capsys, no_plot
) -> None:
    expected, points = reference
    ops = {op for op, *_ in points}
    assert {"lock", "mkdir", "write", "append", "rename", "remove"} <= ops
    assert sum(op == "rename" for op, *_ in points) >= 10
    tried, equal, failures = 0, 0, []
    for at in range(1, len(points) + 1):
        out = tmp_path / f"kill{at}"
        with pytest.raises(faults.Killed), faults.injected(Recorder(kill_at=at)):
            train(config_from_dict(settings(tiny_dirs["sam"], data, out)))
        tried += 1
        if (out / "config.yaml").is_file():
            train(None, resume=out)
        else:  # killed before the run existed: the same command again
            train(config_from_dict(settings(tiny_dirs["sam"], data, out)))
        same = outcome(out) == expected and not leftovers(out)
        equal += same
        if not same:
            failures.append(f"kill at point {at} {points[at - 1]}: leftovers {leftovers(out)}")
    with capsys.disabled():
        print(f"\nkill points tried: {tried}, resumed equal: {equal}")
    assert not failures, "\n".join(failures)
    assert tried == equal == len(points)


def test_a_real_sigkill_inside_the_state_save_resumes(
    tiny_dirs: dict[str, Path], data: Path, tmp_path: Path, reference, caplog
) -> None:
    """The issue's case: SIGKILL between moving state/ aside and renaming the new one in."""
    expected, points = reference
    renames = [i for i, p in enumerate(points, 1) if p[0] == "rename" and p[1] == "state"]
    kill_at = renames[-1] + 1  # the last save: state/ was just moved aside
    out = tmp_path / "run"
    env = dict(os.environ, SAMLORA_TEST_KILL_AT=str(kill_at), OMP_NUM_THREADS="1")
    done = subprocess.run(
        [sys.executable, "-m", "samlora", *cli(tiny_dirs["sam"], data, out)],
        capture_output=True, text=True, env=env, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == -9, done.stderr[-2000:]
    names = {p.name.split("-")[0] for p in out.iterdir()}
    assert "state" not in names and {".state.old", ".state.new", ".samlora.lock"} <= names
    assert main(["train", "--resume", str(out)]) == 0
    assert "took over the lock left by pid" in caplog.text
    assert outcome(out) == expected and not leftovers(out)


def test_a_second_writer_is_refused_naming_the_holder(
    tiny_dirs: dict[str, Path], data: Path, tmp_path: Path, reference, capsys
) -> None:
    expected, _ = reference
    out = tmp_path / "run"
    codes: list[int] = []

    def second(op: str, path: Path, target: Path | None) -> None:
        if op == "rename" and path.name.startswith(".last.tmp") and not codes:  # inside the first save
            codes.append(main(["train", "--resume", str(out)]))
            codes.append(main([*cli(tiny_dirs["sam"], data, out), "--output.overwrite", "true"]))

    with faults.injected(second):
        train(config_from_dict(settings(tiny_dirs["sam"], data, out)))
    err = capsys.readouterr().err
    assert codes == [2, 2]
    assert err.count(f"is in use by pid {os.getpid()} on host") == 2 and "Traceback" not in err
    assert outcome(out) == expected  # no interleaved records, nothing replaced


def test_a_reader_during_every_save_point_sees_one_complete_version_and_changes_nothing(
    tiny_dirs: dict[str, Path], data: Path, tmp_path: Path, reference, image, no_plot
) -> None:
    from samlora.predict.predictor import Predictor

    expected, _ = reference
    out = tmp_path / "run"
    truth: dict[tuple[str, int], str] = {}  # (folder, step) -> weights hash, taken as each version lands
    seen: list[tuple[str, int, str]] = []
    predictions: list[int] = []

    def listing() -> list[str]:
        return sorted(str(p.relative_to(out)) for p in out.rglob("*"))

    def reader(op: str, path: Path, target: Path | None) -> None:
        # predict runs in another process in real life; here it must not draw from the trainer's generators
        import random

        import numpy as np
        import torch

        states = random.getstate(), np.random.get_state()
        with torch.random.fork_rng():
            read(op, path, target)
        random.setstate(states[0])
        np.random.set_state(states[1])

    def read(op: str, path: Path, target: Path | None) -> None:
        if op == "rename" and target is not None and target.name in ("last", "best"):
            meta = json.loads((path / "samlora.json").read_text())
            truth[(target.name, meta["step"])] = hashlib.sha256(
                (path / WEIGHTS_FILE).read_bytes()
            ).hexdigest()
        for name in ("last", "best"):
            before = listing()
            try:
                source, files = read_snapshot(out / name)
            except FileNotFoundError:
                continue  # not saved yet
            step = json.loads(files["samlora.json"])["step"]
            seen.append((name, step, hashlib.sha256(files[WEIGHTS_FILE]).hexdigest()))
            assert read_adapter(out / name)["step"] in (1, 2)
            if op == "rename" and name == "best":  # predict on the live run (its best/)
                predictor = Predictor(str(tiny_dirs["sam"]), adapters=[out], device="cpu")
                predictions.append(len(predictor.predict(image, boxes=[[4, 4, 20, 20]])))
            assert listing() == before, f"a reader changed {out} at {op} {path.name}"

    with faults.injected(reader):
        train(config_from_dict(settings(tiny_dirs["sam"], data, out)))
    assert seen and predictions and set(predictions) == {1}
    assert all(truth[(name, step)] == digest for name, step, digest in seen)
    assert outcome(out) == expected


@pytest.mark.parametrize("where", ["state weights", "adapter weights", "metrics log"])
def test_a_full_disk_stops_cleanly_loses_nothing_and_resumes(
    tiny_dirs: dict[str, Path], data: Path, tmp_path: Path, reference, capsys, where: str
) -> None:
    from safetensors import SafetensorError

    expected, _ = reference
    out = tmp_path / "run"
    seen = {"n": 0}

    def full(op: str, path: Path, target: Path | None) -> None:
        hit = {
            "state weights": op == "write" and path.name == "weights.safetensors",
            "adapter weights": op == "write" and path.name == WEIGHTS_FILE,
            "metrics log": op == "append",
        }[where]
        seen["n"] += hit
        if hit and seen["n"] == (2 if where == "state weights" else 3):  # in the second save or step
            if where == "adapter weights":  # what safetensors raises on ENOSPC
                raise SafetensorError(
                    "Error while serializing: I/O error: No space left on device (os error 28)"
                )
            raise OSError(errno.ENOSPC, "No space left on device", str(path))

    with faults.injected(full):
        code = main(cli(tiny_dirs["sam"], data, out))
    err = capsys.readouterr().err
    assert code == 2 and "no space left on the device" in err and "Traceback" not in err
    assert f"samlora train --resume {out}" in err
    assert (out / "state" / "trainer_state.json").is_file() and read_adapter(out / "last")["step"] >= 1
    assert not [n for n in leftovers(out) if ".tmp-" in n or ".new-" in n]  # the writer cleaned up
    assert main(["train", "--resume", str(out)]) == 0  # space freed
    assert outcome(out) == expected and not leftovers(out)


def test_a_read_only_output_folder_is_refused_before_the_model_loads(
    tiny_dirs: dict[str, Path], data: Path, tmp_path: Path, capsys, monkeypatch
) -> None:
    import samlora.training.trainer as trainer

    def not_now(*args, **kwargs):
        raise AssertionError("the model was loaded before the output folder was checked")

    monkeypatch.setattr(trainer, "load_model", not_now)

    def read_only(op: str, path: Path, target: Path | None) -> None:
        raise OSError(errno.EROFS, "Read-only file system", str(path))

    out = tmp_path / "run"
    with faults.injected(read_only):
        code = main(cli(tiny_dirs["sam"], data, out))
    err = capsys.readouterr().err
    assert code == 2 and "the file system is read-only" in err and "Traceback" not in err
    assert "Nothing was loaded or written" in err and not out.exists()


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_folder_without_write_permission_is_refused(
    tiny_dirs: dict[str, Path], data: Path, tmp_path: Path, capsys
) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        assert main(cli(tiny_dirs["sam"], data, locked / "run")) == 2
    finally:
        locked.chmod(0o755)
    assert "permission denied" in capsys.readouterr().err


def test_a_stale_lock_is_taken_over_with_a_message(
    tiny_dirs: dict[str, Path], data: Path, tmp_path: Path, caplog
) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / ".samlora.lock").write_text(
        json.dumps({"pid": 999999999, "host": "gone", "command": "samlora train"})
    )
    train(config_from_dict(settings(tiny_dirs["sam"], data, out)))
    assert "took over the lock left by pid 999999999 on host gone" in caplog.text
    assert not leftovers(out)
