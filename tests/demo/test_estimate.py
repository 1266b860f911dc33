"""The demo's estimate: from the first two logged training steps, one line about the training left."""

from __future__ import annotations

import json
import time
from pathlib import Path

from samlora.demo.estimate import TrainingEstimate


def test_estimate_from_the_first_logged_steps_ignoring_an_earlier_runs_log(tmp_path: Path) -> None:
    log = tmp_path / "metrics.jsonl"
    log.write_text(
        "".join(json.dumps({"split": "train", "step": s}) + "\n" for s in (10, 20, 30))
    )  # earlier run

    def wait_for(condition) -> None:  # the watcher is a thread: on a busy machine it may look late
        deadline = time.monotonic() + 30
        while not condition() and time.monotonic() < deadline:
            time.sleep(0.01)

    with TrainingEstimate(tmp_path, steps=100, seeds=3, poll=0.01) as estimate:
        time.sleep(0.1)
        log.unlink()  # the new run replaces the old log, then logs every 10 steps
        for step in (10, 20):
            time.sleep(0.1)
            with log.open("a") as f:
                f.write(json.dumps({"split": "train", "step": step}) + "\n")
            wait_for(lambda step=step: len(estimate.seen) * 10 >= step)
        wait_for(lambda: estimate.message is not None)
    assert estimate.message is not None
    assert (
        estimate.message.startswith("estimate after 20 steps:")
        and "3 seed(s) x 100 steps" in estimate.message
    )
    assert "--steps N" in estimate.message
