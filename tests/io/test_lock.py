"""The run-folder lock: one holder, named to the next; a dead holder's lock is taken over."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from samlora.errors import TrainingError
from samlora.io.lock import LOCK_FILE, RunLock


def test_a_second_holder_is_refused_naming_the_first(tmp_path: Path) -> None:
    with RunLock(tmp_path / "run", "samlora train"):
        record = json.loads((tmp_path / "run" / LOCK_FILE).read_text())
        assert record["pid"] == os.getpid()
        with pytest.raises(TrainingError, match=rf"in use by pid {os.getpid()} on host .*samlora train"):
            RunLock(tmp_path / "run", "samlora train --resume").acquire()
    assert not (tmp_path / "run").exists()  # created for the lock only: removed with it
    with RunLock(tmp_path / "run"):  # free again
        pass


def test_a_lock_left_by_a_dead_process_is_taken_over(tmp_path: Path, caplog) -> None:
    (tmp_path / LOCK_FILE).write_text(
        json.dumps({"pid": 12345678, "host": "elsewhere", "since": "yesterday"})
    )
    with RunLock(tmp_path):
        assert json.loads((tmp_path / LOCK_FILE).read_text())["pid"] == os.getpid()
    assert "took over the lock left by pid 12345678 on host elsewhere" in caplog.text
    assert not (tmp_path / LOCK_FILE).exists() and tmp_path.is_dir()
