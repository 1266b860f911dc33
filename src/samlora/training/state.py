"""Resume state without pickle: tensors in safetensors, everything else in JSON.

``state/`` of a run holds the optimiser (tensors + param groups), the
scheduler, the random generators (torch CPU/CUDA, numpy, python), the
trainer's counters and the trainable weights they belong to, written
atomically (:func:`samlora.io.atomic.replacing_dir`): a run killed between
saving ``last/`` and ``state/`` resumes from the state's own weights, never
from newer ``last/`` weights paired with older counters.

:func:`recover_run` is what ``--resume`` does first, holding the run's lock:
every folder whose replacement a kill cut short gets its newest complete copy
back, and every half-written temporary file and folder goes.
"""

from __future__ import annotations

import json
import logging
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from samlora.errors import TrainingError
from samlora.io import faults
from samlora.io.atomic import readable_dir, recover_dir, remove_temporary_files, replacing_dir, siblings
from samlora.io.readers import check_safetensors, read_json

log = logging.getLogger(__name__)

STATE_DIR = "state"
STATE_FILE = "trainer_state.json"
SAVED_DIRS = (STATE_DIR, "last", "best")


def _optimizer_to_files(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, values in state["state"].items():
        for key, value in values.items():
            if torch.is_tensor(value):
                tensors[f"{index}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(index), {})[key] = value
    groups = [
        {k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in state["param_groups"]
    ]
    return tensors, {"param_groups": groups, "scalars": scalars}


def _optimizer_from_files(
    optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict[str, Any]
) -> None:
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        index, key = name.split(".", 1)
        state.setdefault(int(index), {})[key] = value
    for index, values in meta["scalars"].items():
        state.setdefault(int(index), {}).update(values)
    groups = [{k: (tuple(v) if k == "betas" else v) for k, v in g.items()} for g in meta["param_groups"]]
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def _rng_state() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors = {"torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"torch_cuda_{i}"] = s
    np_state = np.random.get_state()
    py_state = random.getstate()
    meta = {
        "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],
        "python": [py_state[0], list(py_state[1]), py_state[2]],
    }
    return tensors, meta


def _set_rng_state(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    torch.set_rng_state(tensors["torch_cpu"])
    cuda = [tensors[k] for k in sorted(tensors) if k.startswith("torch_cuda_")]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda[: torch.cuda.device_count()])
    name, keys, *rest = meta["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), *rest))
    version, internal, gauss = meta["python"]
    random.setstate((version, tuple(internal), gauss))


def save_state(
    run_dir: Path,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    counters: dict[str, Any],
    weights: dict[str, torch.Tensor],
) -> Path:
    """Write ``run_dir/state`` atomically (a complete folder on disk at every instant)."""
    final = Path(run_dir) / STATE_DIR
    opt_tensors, opt_meta = _optimizer_to_files(optimizer)
    rng_tensors, rng_meta = _rng_state()
    meta = {"optimizer": opt_meta, "scheduler": scheduler.state_dict(), "rng": rng_meta, "counters": counters}
    files = {
        "optimizer.safetensors": opt_tensors,
        "rng.safetensors": rng_tensors,
        "weights.safetensors": {k: v.contiguous() for k, v in weights.items()},
    }
    with replacing_dir(final) as tmp:
        for name, tensors in files.items():
            faults.point("write", tmp / name)
            save_file(tensors, str(tmp / name))
        faults.point("write", tmp / STATE_FILE)
        (tmp / STATE_FILE).write_text(json.dumps(meta))
    return final


def load_state(
    run_dir: Path, optimizer: torch.optim.Optimizer, scheduler: torch.optim.lr_scheduler.LRScheduler
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Restore optimiser, scheduler and random generators; return the counters and trainable weights."""
    folder = Path(run_dir) / STATE_DIR
    meta = read_json(folder / STATE_FILE, "resume state", TrainingError)
    for name in ("optimizer.safetensors", "rng.safetensors", "weights.safetensors"):
        check_safetensors(folder / name, "resume state file", TrainingError)
    try:
        _optimizer_from_files(optimizer, load_file(str(folder / "optimizer.safetensors")), meta["optimizer"])
        scheduler.load_state_dict(meta["scheduler"])
        _set_rng_state(load_file(str(folder / "rng.safetensors")), meta["rng"])
        return meta["counters"], load_file(str(folder / "weights.safetensors"))
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        raise TrainingError(
            f"the resume state in {folder} does not fit this run ({type(err).__name__}: {err}); it was not "
            "written by this run's samlora, or was edited. Start a new run instead"
        ) from err


def has_state(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds a complete resume state (a state folder is only ever complete)."""
    return (Path(run_dir) / STATE_DIR / STATE_FILE).is_file()


def state_step(run_dir: Path) -> int | None:
    """The step of the run's complete resume state, or ``None`` without one (for messages)."""
    try:
        return int(json.loads((Path(run_dir) / STATE_DIR / STATE_FILE).read_text())["counters"]["step"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def recover_run(run_dir: Path) -> list[str]:
    """Writer only, under the run's lock: finish every save that a kill cut short; remove leftovers.

    ``state/``, ``last/`` and ``best/`` each get their newest complete copy back (a folder is
    missing only between two renames of its replacement); half-written ``.NAME.tmp-*`` files and
    folders go. Returns one line per thing done, for the log.
    """
    run_dir = Path(run_dir)
    done = [line for name in SAVED_DIRS if (line := recover_dir(run_dir / name))]
    gone = remove_temporary_files(run_dir)
    if gone:
        done.append(f"removed {len(gone)} half-written file(s): {', '.join(sorted(gone)[:5])}")
    return done


# what a run writes into output.dir; all of it goes when a new run replaces an old one (config.yaml is
# replaced atomically instead, so that a folder holding a run always holds its config)
RUN_ARTEFACTS = ("state", "last", "best", "metrics.jsonl", "loss_curve.png", "samlora")


def remove_run(run_dir: Path) -> None:
    """Delete an earlier run's artefacts (``output.overwrite``), its resume state first.

    With the state gone first, a kill part-way leaves a folder that resumes from scratch, never
    an old state under a new config.
    """
    run_dir = Path(run_dir)
    for name in RUN_ARTEFACTS:
        path = run_dir / name
        for leftover in [path, *(p for kind in ("new", "old", "tmp") for p in siblings(path, kind))]:
            if leftover.is_dir() and not leftover.is_symlink():
                shutil.rmtree(leftover)
            else:
                leftover.unlink(missing_ok=True)
    remove_temporary_files(run_dir)


def holds_run(folder: Path) -> bool:
    """Whether ``folder`` holds a run that training would lose: resume state or saved weights.

    A folder where a run failed at start-up (only ``config.yaml``) holds none; one where a kill
    cut a save short (a complete copy beside a missing folder) holds one.
    """
    folder = Path(folder)
    return has_state(folder) or any(readable_dir(folder / name) is not None for name in SAVED_DIRS)
