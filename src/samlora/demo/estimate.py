"""An estimate of the demo's training time, from its first logged steps, said once while it trains.

The demo's first run logs its training loss every ``train.log_every`` steps to ``metrics.jsonl``; a
thread watches that file, and from the wall time between the first two records it knows the time a
step takes on this machine. The time the run took to reach its first step (loading, data checks) is
counted once per seed as well.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path
from types import TracebackType

log = logging.getLogger(__name__)


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


class TrainingEstimate:
    """Context manager around the first seed's training: logs one estimate of the remaining training.

    Args:
        run_dir: the run whose ``metrics.jsonl`` is watched.
        steps: optimiser steps of each seed's run.
        seeds: how many runs of ``steps`` the demo trains (this one included).
        poll: seconds between two looks at the file.
    """

    def __init__(self, run_dir: Path, steps: int, seeds: int, poll: float = 0.2):
        self.log_file = Path(run_dir) / "metrics.jsonl"
        self.steps, self.seeds, self.poll = steps, seeds, poll
        self.message: str | None = None
        self.seen: list[tuple[int, float]] = []  # (step, wall time it was first seen) of the new run
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="samlora-demo-estimate", daemon=True)

    def __enter__(self) -> TrainingEstimate:
        self._started = time.perf_counter()
        self._old = len(self._steps_logged())  # read here, not in the thread: it may start late
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join()

    def _steps_logged(self) -> list[int]:
        try:
            lines = self.log_file.read_text().splitlines()
        except OSError:
            return []
        steps = []
        for line in lines:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:  # a line being written
                continue
            if record.get("split") == "train":
                steps.append(int(record["step"]))
        return steps

    def _watch(self) -> None:
        seen = self.seen
        old = self._old  # an earlier run's log, until the new run replaces it
        while not self._stop.wait(self.poll):
            steps = self._steps_logged()
            if old:
                old = old if len(steps) >= old else 0
                continue
            if steps and (not seen or steps[-1] > seen[-1][0]):
                seen.append((steps[-1], time.perf_counter()))
            if len(seen) == 2:
                self.message = self._estimate(seen)
                log.info("%s", self.message)
                return

    def _estimate(self, seen: list[tuple[int, float]]) -> str:
        (first, t1), (second, t2) = seen
        per_step = (t2 - t1) / (second - first)
        start_up = max(t1 - self._started - first * per_step, 0.0)
        left = (self.steps - second) * per_step + (self.seeds - 1) * (start_up + self.steps * per_step)
        return (
            f"estimate after {second} steps: {per_step:.2f} s per training step here, so training takes about "
            f"{_duration(left)} more ({self.seeds} seed(s) x {self.steps} steps), then the evaluation; "
            "`samlora demo --steps N` trains fewer steps"
        )
