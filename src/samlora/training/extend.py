"""How far a run got, whether it is finished, and extending a finished run with more steps or epochs.

``samlora train --resume RUN`` continues a killed run; ``--resume RUN --train.max_steps N`` (or
``--train.epochs N``) extends a run, finished or not, to ``N``, keeping every other setting of its
``config.yaml``. The learning-rate schedule is recomputed for the new length and continues from the
step reached (a cosine schedule rises again from where the longer schedule would be), so an extended
run is not the same as a run started with the longer length.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from samlora.config import load_config
from samlora.errors import ConfigError, TrainingError
from samlora.io.readers import read_json

from .state import STATE_DIR

EXTENDABLE = ("max_steps", "epochs")
"""The ``train`` keys ``--resume`` accepts: the run's length."""


@dataclass(frozen=True)
class RunProgress:
    """Where a run's resume state stands against the length in its ``config.yaml``."""

    run_dir: Path
    step: int
    epoch: int
    stopped_early: bool
    max_steps: int
    epochs: int

    @property
    def finished(self) -> bool:
        """Stopped early, or reached ``train.max_steps`` (or, without it, ``train.epochs``)."""
        if self.stopped_early:
            return True
        return self.step >= self.max_steps if self.max_steps else self.epoch >= self.epochs

    def describe(self) -> str:
        """E.g. ``step 40 of 40 (train.max_steps 40)``."""
        if self.stopped_early:
            return f"stopped early at step {self.step} (train.patience)"
        if self.max_steps:
            return f"step {self.step} of {self.max_steps} (train.max_steps {self.max_steps})"
        return f"epoch {self.epoch} of {self.epochs} (train.epochs {self.epochs}), step {self.step}"


def run_progress(run_dir: str | Path) -> RunProgress:
    """Read ``RUN/state/trainer_state.json`` and ``RUN/config.yaml`` (no weights).

    A run without a complete ``state/`` (killed before its first checkpoint, or inside a save)
    counts as at step 0, not finished: ``--resume`` then lets the Trainer, the run's one writer,
    recover its newest complete state or train it again from the start.
    """
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise TrainingError(
            f"{run_dir} holds no run to resume (no config.yaml); start a new run with "
            "`samlora train --config ... --output.dir ...` instead"
        )
    state = run_dir / STATE_DIR / "trainer_state.json"
    counters = read_json(state, "resume state", TrainingError).get("counters", {}) if state.is_file() else {}
    train = load_config(run_dir / "config.yaml").train
    return RunProgress(
        run_dir=run_dir,
        step=int(counters.get("step", 0)),
        epoch=int(counters.get("epoch", 0)),
        stopped_early=bool(counters.get("stopped_early")),
        max_steps=train.max_steps,
        epochs=train.epochs,
    )


def extension_overrides(run_dir: str | Path, extend: dict[str, Any]) -> dict[str, Any]:
    """The ``train`` overrides that extend ``run_dir`` to the length in ``extend``; a clear error when they
    would not add a step. ``epochs`` alone also sets ``max_steps`` to 0, so that epochs decide."""
    progress = run_progress(run_dir)
    where = f"--resume {progress.run_dir}"
    unknown = sorted(set(extend) - set(EXTENDABLE))
    if unknown:
        raise ConfigError([f"{where} extends a run by train.max_steps or train.epochs only, not {unknown}"])
    if progress.stopped_early:
        raise ConfigError(
            [f"{progress.run_dir} {progress.describe()}: it would stop again at its next validation; start a new "
             "run (e.g. with a larger train.patience) to train further"]
        )  # fmt: skip
    overrides = dict(extend)
    if "max_steps" in extend and extend["max_steps"] <= progress.step:
        raise ConfigError(
            [f"{where} --train.max_steps {extend['max_steps']}: the run is at step {progress.step} already; "
             f"pass more than {progress.step}"]
        )  # fmt: skip
    if "epochs" in extend and "max_steps" not in extend:
        if extend["epochs"] <= progress.epoch:
            raise ConfigError(
                [f"{where} --train.epochs {extend['epochs']}: the run has completed {progress.epoch} epoch(s) "
                 f"already; pass more than {progress.epoch}"]
            )  # fmt: skip
        overrides["max_steps"] = 0
    return overrides
