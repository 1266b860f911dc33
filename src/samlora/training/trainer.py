"""The Trainer: one loop on accelerate for promptable and concept fine-tuning.

Devices, mixed precision, gradient accumulation and multi-process data
parallelism come from accelerate; everything else (data order, resume state,
checkpoints, validation, early stopping, logging) is explicit here so that
each config key visibly has its effect and a resumed run repeats the
uninterrupted one exactly.
"""

from __future__ import annotations

import logging
import os
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState, GradientState
from accelerate.utils import DistributedDataParallelKwargs, set_seed

from samlora.config import Config, load_config, save_config
from samlora.data.loader import EpochLoader
from samlora.data.prompts import seed_for
from samlora.errors import ConfigError, TrainingError
from samlora.io.disk import describe, fix_for
from samlora.io.lock import RunLock
from samlora.lora.adapters import load_adapter
from samlora.lora.counts import format_report, parameter_report
from samlora.lora.plan import apply_lora
from samlora.models.attention import flex_attention_for
from samlora.models.loading import enable_activation_checkpointing, load_model
from samlora.tasks import make_task

from .checkpoints import Checkpoints, saved_step
from .extend import extension_overrides
from .guard import Problem, StepTally, check_in_sync
from .log import MetricsLog, plot_loss_curve
from .order import batches_per_epoch, epoch_indices
from .ranks import on_main
from .schedule import make_scheduler
from .state import has_state, holds_run, load_state, recover_run, remove_run
from .trackers import flat_config, tracker_names

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """What a finished run produced."""

    run_dir: Path
    best_dir: Path
    last_dir: Path
    steps: int
    best_metric: str
    best_value: float | None
    history: list[dict[str, Any]] = field(default_factory=list)
    is_main_process: bool = True


class Trainer:
    """Fine-tune a base model with LoRA according to a :class:`Config`.

    Args:
        cfg: the resolved configuration (ignored when resuming: the run's own
            ``config.yaml`` is used).
        resume: an output folder of an earlier run to continue, from its newest
            complete state (from the start when it was stopped before any).

    The main process holds the run folder's lock (:class:`~samlora.io.lock.RunLock`)
    from before the model loads until the run ends: a second train or resume on the
    same folder is refused naming the holder.
    """

    def __init__(
        self,
        cfg: Config | None = None,
        resume: str | Path | None = None,
        extend: dict[str, int] | None = None,
    ):
        self.extended = bool(extend)
        if resume is not None:
            self.run_dir = Path(resume)
            if not (self.run_dir / "config.yaml").is_file():
                raise TrainingError(
                    f"{self.run_dir} holds no run to resume (no config.yaml); start a new run with "
                    "`samlora train --config ... --output.dir ...` instead"
                )
            more = {"train": extension_overrides(self.run_dir, extend)} if extend else None
            cfg = load_config(self.run_dir / "config.yaml", more)
        elif cfg is None:
            raise ValueError("pass a config or a run folder to resume")
        else:
            self.run_dir = Path(cfg.output.dir)
        self.cfg = cfg
        self.resuming = resume is not None
        self.full = not cfg.lora.components
        tr = cfg.train
        device = tr.device
        trackers = tracker_names(tr.trackers)
        if not torch.distributed.is_initialized() and int(os.environ.get("WORLD_SIZE", "1")) == 1:
            # a fresh state per run in one process (e.g. the demo's seeds, tests): accelerate keeps singletons
            AcceleratorState._reset_state(reset_partial_state=True)
            GradientState._reset_state()
        self.accelerator = Accelerator(
            mixed_precision=tr.precision,
            gradient_accumulation_steps=tr.grad_accum,
            cpu=device == "cpu" or (device == "auto" and not torch.cuda.is_available() and not _mps()),
            log_with=trackers or None,
            project_dir=str(self.run_dir),
            kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
        )
        if device == "cuda" and not torch.cuda.is_available():
            raise TrainingError(
                "train.device is cuda but no CUDA GPU is visible; use train.device auto or cpu"
            )
        if tr.precision == "fp16" and self.accelerator.device.type == "cpu":
            # accelerate would silently run float32 on the CPU
            raise ConfigError(
                [
                    "train.precision is fp16 but training runs on the CPU, where fp16 autocast is not "
                    "available; use train.precision bf16 (works on CPU) or no, or train on a GPU"
                ]
            )

    # ------------------------------------------------------------------ set-up

    def _check_output(self) -> None:
        """Refuse (before anything is loaded or written) to start a new run over an existing one."""
        if not self.resuming and holds_run(self.run_dir) and not self.cfg.output.overwrite:
            raise TrainingError(
                f"output.dir {self.run_dir} already holds a run; continue it with "
                f"`samlora train --resume {self.run_dir}`, choose another --output.dir, or pass --output.overwrite true"
            )

    def _recover(self) -> None:
        """``--resume``, holding the lock: finish saves a kill cut short, drop leftovers, pick the start."""
        acc = self.accelerator
        for line in on_main(acc, lambda: recover_run(self.run_dir)) or []:
            log.warning("%s: %s", self.run_dir, line)
        if not has_state(self.run_dir):
            if acc.is_main_process:
                log.warning(
                    "%s holds no complete resume state (it was stopped before its first checkpoint was "
                    "complete); training again from the start with its config.yaml",
                    self.run_dir,
                )
            self.resuming = False  # a new run in the same folder, with the same config

    def _prepare_output(self) -> None:
        """Once start-up succeeded: remove an old run's artefacts and write the resolved config."""

        def write() -> None:
            if self.resuming:  # an extended run records its new length
                if self.extended:
                    save_config(self.cfg, self.run_dir / "config.yaml")
                return
            try:
                self.run_dir.mkdir(parents=True, exist_ok=True)
                remove_run(self.run_dir)
                save_config(self.cfg, self.run_dir / "config.yaml")
            except OSError as err:
                raise TrainingError(
                    f"cannot write the run folder {self.run_dir}: {describe(err)}; {fix_for(err)}"
                ) from err

        on_main(self.accelerator, write)

    def _best_metric(self, task) -> str:
        try:
            return task.best_metric(self.cfg.train.best_metric)
        except ValueError as err:
            raise ConfigError([str(err)]) from err

    def _build_model(self) -> None:
        cfg, acc = self.cfg, self.accelerator
        set_seed(cfg.train.seed)
        self.loaded = load_model(cfg.model.name, family=cfg.model.family, device="cpu")
        if cfg.model.gradient_checkpointing:
            enable_activation_checkpointing(self.loaded.model)
        if cfg.model.attention == "flex":
            flex_attention_for(self.loaded, acc.device)
        self.plan_notes: list[str] = []
        if self.full:  # no LoRA: the train_fully components are trained in place, saved as whole models
            if self.resuming:
                self.loaded.model = load_model(str(self.run_dir / "last"), family=cfg.model.family).model
            for component in cfg.lora.train_fully:
                for top in self.loaded.spec.components.get(component, ()):
                    self.loaded.model.get_submodule(top).requires_grad_(True)
            self.model = self.loaded.model
        elif self.resuming:
            self.model = load_adapter(self.loaded, self.loaded.model, self.run_dir / "last", trainable=True)
        else:
            self.model, plan = apply_lora(
                self.loaded.model, self.loaded.spec, cfg.lora, base_name=cfg.model.name
            )
            self.plan_notes = plan.notes
        self.model.to(acc.device)
        self.checkpoints = Checkpoints(acc, cfg, self.run_dir, self.loaded, self.model)

    def _summary(self, n_train: int, n_valid: int, total_steps: int) -> str:
        cfg, acc = self.cfg, self.accelerator
        eff = cfg.train.batch_size * cfg.train.grad_accum * acc.num_processes
        lines = [
            f"model       {cfg.model.name} (family {self.loaded.spec.name}, task {self.loaded.spec.task})",
            f"data        {cfg.data.root}: {n_train} training images, {n_valid} validation images",
            f"batch       {cfg.train.batch_size} x {cfg.train.grad_accum} accumulation x {acc.num_processes} "
            f"process(es) = {eff} images per optimiser step",
            f"steps       {total_steps} optimiser steps, lr {cfg.train.lr} ({cfg.train.schedule}, "
            f"{cfg.train.warmup_steps} warm-up), precision {cfg.train.precision}, device {acc.device}",
            f"output      {self.run_dir}",
            "",
            format_report(parameter_report(self.model, self.loaded.spec)),
        ]
        lines += [f"note: {n}" for n in self.plan_notes]
        return "\n".join(lines)

    # ------------------------------------------------------------------ loop

    def run(self) -> TrainResult:
        """Train, validate, checkpoint; return where the adapters are."""
        command = "samlora train --resume" if self.resuming else "samlora train"
        with ExitStack() as held:
            on_main(self.accelerator, lambda: held.enter_context(RunLock(self.run_dir, command)))
            if self.resuming:
                self._recover()
            else:
                self._check_output()
            return self._run()

    def _run(self) -> TrainResult:
        cfg, acc = self.cfg, self.accelerator
        tr = cfg.train
        self._build_model()
        task = make_task(self.loaded, cfg)
        best_metric = self._best_metric(task)
        train_set, valid_set = task.datasets()
        self.checkpoints.describe(train_set, valid_set)  # for the saved folders' model cards
        available = batches_per_epoch(len(train_set), acc.num_processes, tr.batch_size)
        if available < tr.grad_accum:
            raise TrainingError(
                f"train.grad_accum is {tr.grad_accum} but an epoch has only {available} batches of "
                f"{tr.batch_size} per process; lower train.grad_accum or train.batch_size"
            )
        # accumulation never spans two epochs: an epoch ends on an optimiser step
        self._prepare_output()  # start-up succeeded: from here on the folder holds this run
        steps_per_epoch = available // tr.grad_accum
        per_epoch = steps_per_epoch * tr.grad_accum
        total_steps = tr.max_steps or tr.epochs * steps_per_epoch
        module = task.module(self.model)
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(trainable, lr=tr.lr, weight_decay=tr.weight_decay)
        scheduler = make_scheduler(optimizer, total_steps, tr.warmup_steps, tr.schedule)
        module, optimizer = acc.prepare(module, optimizer)
        metrics_log = MetricsLog(self.run_dir, enabled=acc.is_main_process)
        counters = {
            "step": 0, "epoch": 0, "batch": 0, "best": None, "bad_validations": 0, "images": 0,
            "stopped_early": False,
        }  # fmt: skip
        if self.resuming:
            counters, weights = load_state(self.run_dir, optimizer, scheduler)
            self.checkpoints.restore_weights(weights)
            metrics_log.truncate_after(counters["step"])
        if acc.is_main_process:
            log.info(
                "training\n%s", self._summary(len(train_set), len(valid_set) if valid_set else 0, total_steps)
            )
            if valid_set is None:
                log.warning(
                    "no '%s' split in %s: no validation; best/ will equal last/",
                    cfg.data.valid_split,
                    cfg.data.root,
                )
        if acc.log_with:
            acc.init_trackers("samlora", config=flat_config(cfg))
        history: list[dict[str, Any]] = []
        step, stop = counters["step"], bool(counters.get("stopped_early"))
        if stop and acc.is_main_process:
            log.warning(
                "%s already stopped early at step %d (no better validation %s in train.patience=%d "
                "validations); nothing to resume. Its adapter is in %s; start a new run to train further",
                self.run_dir, step, best_metric, tr.patience, self.run_dir / "best",
            )  # fmt: skip
        progress = _progress(acc, total_steps, step)
        started, images_at_start, checkpoint_time = time.perf_counter(), counters["images"], 0.0
        tally, last_read = StepTally(acc.device), step  # nothing is read back from the device per step
        workers = 0 if getattr(train_set, "items_in_process", False) else tr.num_workers
        if workers != tr.num_workers:
            log.info(
                "training items come from the decoded cache in this process (train.num_workers: the data check and validation)"
            )
        batches = EpochLoader(
            train_set, tr.batch_size, task.collate, workers, task.set_epoch,
            seed=seed_for(tr.seed, "loader", acc.process_index),
        )  # fmt: skip
        while step < total_steps and not stop:
            epoch = counters["epoch"]
            indices = epoch_indices(
                len(train_set), tr.seed, epoch, acc.process_index, acc.num_processes, True
            )
            skip = counters["batch"] * tr.batch_size
            task.set_epoch(train_set, epoch)
            module.train()
            for batch in batches.epoch(epoch, indices[skip:]):
                with acc.accumulate(module):
                    generator = torch.Generator(device="cpu").manual_seed(
                        seed_for(tr.seed, "step", epoch, counters["batch"], acc.process_index)
                    )
                    with acc.autocast():
                        loss, terms = task.train_loss(module, batch, generator)
                    tally.loss(loss, step + 1, terms)
                    acc.backward(loss)
                    if acc.sync_gradients:
                        norm = (
                            acc.clip_grad_norm_(trainable, tr.grad_clip)
                            if tr.grad_clip > 0
                            else _grad_norm(trainable)
                        )
                        tally.grad_norm(norm, step + 1)
                    optimizer.step()
                    optimizer.zero_grad(set_to_none=True)
                counters["batch"] += 1
                counters["images"] += len(batch) * acc.num_processes
                if not acc.sync_gradients:
                    continue
                lr_used = scheduler.get_last_lr()[0]
                scheduler.step()
                step += 1
                counters["step"] = step
                end_of_epoch = counters["batch"] >= per_epoch
                due = (tr.eval_every and step % tr.eval_every == 0) or (not tr.eval_every and end_of_epoch)
                logged = step % tr.log_every == 0 or step == total_steps
                terms = tally.end_step(keep=logged)
                if logged or due:  # the one read-back: before logging and before anything is saved
                    problem, values = tally.read(terms)
                    if problem is not None:
                        self._stop_non_finite(problem, (last_read + 1, step), steps_per_epoch)
                    last_read = step
                if logged:
                    record = {"split": "train", "step": step, "epoch": epoch, "lr": lr_used, **values}
                    elapsed = max(time.perf_counter() - started - checkpoint_time, 1e-9)  # training time only
                    record["images_per_s"] = (counters["images"] - images_at_start) / elapsed
                    metrics_log.write(record)
                    if acc.log_with:
                        acc.log(
                            {f"train/{k}": v for k, v in record.items() if isinstance(v, float)}, step=step
                        )
                    progress.set_postfix(loss=f"{record['loss']:.4f}", img_s=f"{record['images_per_s']:.1f}")
                progress.update(1)
                if end_of_epoch:
                    counters["epoch"], counters["batch"] = epoch + 1, 0
                if due or step == total_steps:
                    checkpoint_started = time.perf_counter()
                    stop = self.checkpoints.save(
                        task,
                        valid_set,
                        counters,
                        epoch,
                        best_metric,
                        metrics_log,
                        history,
                        optimizer,
                        scheduler,
                    )
                    checkpoint_time += time.perf_counter() - checkpoint_started
                if step >= total_steps or stop or end_of_epoch:
                    break
        progress.close()
        acc.wait_for_everyone()
        check_in_sync(self.accelerator, self.model)
        on_main(acc, lambda: plot_loss_curve(self.run_dir))  # every process leaves together
        acc.end_training()
        result = TrainResult(
            run_dir=self.run_dir,
            best_dir=self.run_dir / "best",
            last_dir=self.run_dir / "last",
            steps=step,
            best_metric=best_metric,
            best_value=counters["best"],
            history=history,
            is_main_process=acc.is_main_process,
        )
        if acc.is_main_process:
            value = "n/a" if counters["best"] is None else f"{counters['best']:.4f}"
            log.info("done: %d steps; best %s %s; adapter in %s", step, best_metric, value, result.best_dir)
        return result

    def _stop_non_finite(self, problem: Problem, unread: tuple[int, int], steps_per_epoch: int) -> None:
        """Stop the run: a non-finite loss or gradient would make every later step garbage.

        The loop reads the device only every ``train.log_every`` steps, so the message names the
        first bad step and the range of steps since the last read (none of them was saved).
        """
        last = self.run_dir / "last"
        saved = (
            f"The last good checkpoint is {last} (step {saved_step(last)})."
            if last.is_dir()
            else "No checkpoint was saved before it (the first is written at the first validation)."
        )
        what = (
            f"the loss became {problem.value}"
            if problem.what == "loss"
            else (f"the loss was finite but the gradient norm became {problem.value}")
        )
        epoch = (problem.step - 1) // steps_per_epoch
        raise TrainingError(
            f"{what} at step {problem.step} (epoch {epoch}; read back after steps {unread[0]}-{unread[1]}); "
            f"nothing was saved from these steps. {saved} Lower train.lr, "
            "use train.precision bf16 instead of fp16, or check the data with `samlora data check`"
        )


def _grad_norm(params: list[torch.nn.Parameter]) -> torch.Tensor:
    grads = [p.grad.detach().float().norm() for p in params if p.grad is not None]
    return torch.linalg.vector_norm(torch.stack(grads)) if grads else torch.zeros(())


def _mps() -> bool:
    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


def _progress(acc: Accelerator, total: int, done: int):
    from tqdm.auto import tqdm

    return tqdm(
        total=total, initial=done, desc="train", disable=not acc.is_local_main_process, dynamic_ncols=True
    )


def train(
    cfg: Config | None, resume: str | Path | None = None, extend: dict[str, int] | None = None
) -> TrainResult:
    """Run a training job (the library entry point of ``samlora train``); a new run's data, components,
    targets and output folder are checked first, all at once (:mod:`~samlora.training.preflight`).
    ``extend`` (``{"max_steps": N}`` or ``{"epochs": N}``) lengthens the run being resumed
    (:mod:`~samlora.training.extend`)."""
    if resume is None:
        from .preflight import check_before_loading

        # notes (no validation split, a model not on this machine yet) come again when training meets them;
        # an output folder holding a run is refused by the Trainer itself
        check_before_loading(cfg, existing_run=False)
    return Trainer(cfg, resume=resume, extend=extend).run()
