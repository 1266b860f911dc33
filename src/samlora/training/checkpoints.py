"""Checkpoints of a run: validate, save ``last/`` (and ``best/`` when improved), then the resume state."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import torch
from accelerate import Accelerator

from samlora.config import Config
from samlora.errors import TrainingError
from samlora.io.disk import describe, fix_for, is_disk_fault
from samlora.lora.adapters import META_FILE, adapter_metadata, save_adapter, save_model_folder
from samlora.lora.card import run_facts
from samlora.lora.counts import parameter_report
from samlora.models.loading import LoadedModel

from .ranks import on_main
from .state import STATE_DIR, save_state, state_step

log = logging.getLogger(__name__)


class Checkpoints:
    """Writes a run's checkpoints; ``full`` runs (no LoRA) save whole model folders instead of adapters."""

    def __init__(
        self,
        accelerator: Accelerator,
        cfg: Config,
        run_dir: Path,
        loaded: LoadedModel,
        model: torch.nn.Module,
    ):
        self.accelerator, self.cfg, self.run_dir = accelerator, cfg, run_dir
        self.loaded, self.model = loaded, model
        self.full = not cfg.lora.components
        self.facts: dict = {}

    def describe(self, train_set, valid_set) -> None:
        """Record what the saved folders' model cards tell: data, parameter counts, the config."""
        counts = parameter_report(self.model, self.loaded.spec).values()
        split = train_set.split
        self.facts = run_facts(
            self.cfg, sum(c.trainable for c in counts), sum(c.base for c in counts),
            len(train_set), len(valid_set) if valid_set is not None else 0, split.category_names,
        )  # fmt: skip

    def trainable_weights(self) -> dict[str, torch.Tensor]:
        return {n: p.detach().cpu().clone() for n, p in self.model.named_parameters() if p.requires_grad}

    def restore_weights(self, weights: dict[str, torch.Tensor]) -> None:
        """Load the trainable weights saved with the resume state (they match its counters)."""
        params = {n: p for n, p in self.model.named_parameters() if p.requires_grad}
        if set(params) != set(weights):
            raise TrainingError(
                f"the resume state in {self.run_dir / STATE_DIR} holds other trainable weights than the model "
                f"rebuilt from config.yaml ({len(weights)} vs {len(params)} tensors); start a new run"
            )
        with torch.no_grad():
            for name, param in params.items():
                param.copy_(weights[name].to(param.device, param.dtype))

    def save(
        self, task, valid_set, counters, epoch, best_metric, metrics_log, history, optimizer, scheduler
    ) -> bool:
        """Validate (if there is a split), save last/ (+ best/ when improved) and the resume state.

        The resume state is written last and holds the trainable weights too, so a run killed
        between two of these writes resumes from one consistent point.
        """
        acc, tr = self.accelerator, self.cfg.train
        step = counters["step"]
        metrics: dict[str, float] = {}
        if valid_set is not None:
            metrics = task.validate(self.model, valid_set, acc)
            record = {"split": "valid", "step": step, "epoch": epoch, **metrics}
            metrics_log.write(record)
            history.append(record)
            if acc.log_with:
                acc.log({f"valid/{k}": v for k, v in metrics.items()}, step=step)
        value = metrics.get(best_metric)
        value = None if value is None or math.isnan(value) else value  # e.g. cgF1 without negative pairs
        improved = value is not None and (
            counters["best"] is None
            or (value > counters["best"] if task.higher_is_better(best_metric) else value < counters["best"])
        )
        if improved:
            counters["best"], counters["bad_validations"] = value, 0
        elif value is not None:
            counters["bad_validations"] += 1
        stop = bool(tr.patience and counters["bad_validations"] >= tr.patience)
        counters["stopped_early"] = stop
        targets = ["last"] + (["best"] if improved or valid_set is None else [])
        on_main(acc, lambda: self._write(targets, task, metrics, step, counters, optimizer, scheduler))
        if stop and acc.is_main_process:
            log.info(
                "early stopping at step %d: %s did not improve on %.4f in %d validations (train.patience)",
                step, best_metric, counters["best"], tr.patience,
            )  # fmt: skip
        return stop

    def _write(self, targets, task, metrics, step, counters, optimizer, scheduler) -> None:
        """Write ``targets`` (last/, best/) then the resume state; a disk fault becomes a TrainingError."""
        unwrapped = self.accelerator.unwrap_model(self.model)
        meta = adapter_metadata(
            self.loaded, self.cfg.lora, class_names=task.class_names, metrics=metrics, step=step
        )
        meta["training"] = self.facts
        try:
            for name in targets:
                if self.full:
                    save_model_folder(unwrapped, self.run_dir / name, meta, self.loaded.tokenizer)
                else:
                    save_adapter(unwrapped, self.run_dir / name, meta)
            save_state(self.run_dir, optimizer, scheduler, counters, self.trainable_weights())
        except Exception as err:
            if not is_disk_fault(err):
                raise
            kept = state_step(self.run_dir)
            resume = (
                f"the newest complete state (step {kept}) is intact: {fix_for(err)}, then continue with "
                f"`samlora train --resume {self.run_dir}`"
                if kept is not None
                else f"no complete state was saved yet: {fix_for(err)}, then run `samlora train --resume {self.run_dir}`"
                " (it starts again from step 0)"
            )
            raise TrainingError(
                f"saving the checkpoint of step {step} in {self.run_dir} failed: {describe(err)}. Nothing saved "
                f"before was lost; {resume}"
            ) from err


def saved_step(folder: Path) -> str:
    """The step recorded in a saved folder's samlora.json, or ``unknown``."""
    try:
        return str(json.loads((folder / META_FILE).read_text())["step"])
    except (OSError, ValueError, KeyError):
        return "unknown"
