"""The same command under torchrun: 2 CPU processes (gloo) shard the data and end with identical adapters."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from samlora.data.synthetic import write_mask_dataset
from samlora.training.log import read_log

TORCHRUN = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or shutil.which("torchrun")


@pytest.mark.skipif(TORCHRUN is None, reason="torchrun is not installed")
def test_two_processes_halve_the_steps_and_agree(tiny_dirs: dict[str, Path], tmp_path: Path) -> None:
    data = write_mask_dataset(tmp_path / "data", n_train=8, n_valid=3, seed=1)
    common = ["--model.name", str(tiny_dirs["sam"]), "--data.root", str(data), "--train.epochs", "2", "--train.batch_size", "2",
              "--train.num_workers", "0", "--train.trackers", "[none]", "--train.log_every", "1"]  # fmt: skip
    env = dict(os.environ, OMP_NUM_THREADS="1")
    single = subprocess.run(
        [sys.executable, "-m", "samlora", "train", *common, "--output.dir", str(tmp_path / "one")],
        capture_output=True, text=True, env=env, timeout=300, check=False,
    )  # fmt: skip
    assert single.returncode == 0, single.stderr[-2000:]
    double = subprocess.run(
        [TORCHRUN, "--standalone", "--nproc_per_node", "2", "-m", "samlora", "train", *common, "--output.dir", str(tmp_path / "two")],
        capture_output=True, text=True, env=env, timeout=300, check=False,
    )  # fmt: skip
    assert double.returncode == 0, double.stderr[-3000:]
    steps_one = [r["step"] for r in read_log(tmp_path / "one") if r["split"] == "train"]
    steps_two = [r["step"] for r in read_log(tmp_path / "two") if r["split"] == "train"]
    assert (len(steps_one), len(steps_two)) == (8, 4)
    assert "all 2 processes hold identical trainable weights" in double.stderr
    assert double.stdout.count("adapter:") == 1  # only the main process reports and writes
    assert (tmp_path / "two" / "best" / "adapter_model.safetensors").is_file()
    valid = [r for r in read_log(tmp_path / "two") if r["split"] == "valid"]
    assert valid and valid[-1]["objects"] >= 3  # validation reduced over both processes' shards


@pytest.mark.skipif(TORCHRUN is None, reason="torchrun is not installed")
def test_a_held_run_folder_stops_every_process_at_once(tiny_dirs: dict[str, Path], tmp_path: Path) -> None:
    """Only the main process takes the lock; when it is refused, every process stops with the
    message naming the holder (the other one used to crash at the next barrier with gloo's
    "Connection closed by peer" traceback), and nothing is written."""
    from samlora.io.lock import RunLock

    data = write_mask_dataset(tmp_path / "data", n_train=4, n_valid=2, seed=1)
    run = tmp_path / "run"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    with RunLock(run, "samlora train (the test)"):
        double = subprocess.run(
            [TORCHRUN, "--standalone", "--nproc_per_node", "2", "-m", "samlora", "train",
             "--model.name", str(tiny_dirs["sam"]), "--data.root", str(data), "--train.trackers", "[none]",
             "--output.dir", str(run)],
            capture_output=True, text=True, env=env, timeout=240, check=False,
        )  # fmt: skip
    assert double.returncode != 0
    said = double.stderr.count(f"samlora: error: {run} is in use by pid {os.getpid()}")
    assert said == 2, double.stderr[-3000:]  # both processes, each with exit status 2
    assert "[rank1]: Traceback" not in double.stderr and "Connection closed" not in double.stderr
    assert not (run / "config.yaml").exists()
