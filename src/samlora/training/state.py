"""Resume state without pickle: tensors in safetensors, everything else in JSON.

``state/`` of a run holds the optimiser (tensors + param groups), the
scheduler, the random generators (torch CPU/CUDA, numpy, python), the
trainer's counters and the trainable weights they belong to, written
atomically in one rename: a run killed between saving ``last/`` and
``state/`` resumes from the state's own weights, never from newer ``last/``
weights paired with older counters.
"""

from __future__ import annotations

import json
import random
import shutil
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

STATE_DIR = "state"


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
    """Write ``run_dir/state`` atomically (temporary folder, then rename)."""
    final = Path(run_dir) / STATE_DIR
    tmp = final.with_name(f".{STATE_DIR}.tmp-{uuid.uuid4().hex[:8]}")
    tmp.mkdir(parents=True)
    opt_tensors, opt_meta = _optimizer_to_files(optimizer)
    save_file(opt_tensors, str(tmp / "optimizer.safetensors"))
    rng_tensors, rng_meta = _rng_state()
    save_file(rng_tensors, str(tmp / "rng.safetensors"))
    save_file({k: v.contiguous() for k, v in weights.items()}, str(tmp / "weights.safetensors"))
    meta = {"optimizer": opt_meta, "scheduler": scheduler.state_dict(), "rng": rng_meta, "counters": counters}
    (tmp / "trainer_state.json").write_text(json.dumps(meta))
    old = None
    if final.exists():
        old = final.with_name(f".{STATE_DIR}.old-{uuid.uuid4().hex[:8]}")
        final.rename(old)
    tmp.rename(final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load_state(
    run_dir: Path, optimizer: torch.optim.Optimizer, scheduler: torch.optim.lr_scheduler.LRScheduler
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Restore optimiser, scheduler and random generators; return the counters and trainable weights."""
    folder = Path(run_dir) / STATE_DIR
    meta = json.loads((folder / "trainer_state.json").read_text())
    _optimizer_from_files(optimizer, load_file(str(folder / "optimizer.safetensors")), meta["optimizer"])
    scheduler.load_state_dict(meta["scheduler"])
    _set_rng_state(load_file(str(folder / "rng.safetensors")), meta["rng"])
    return meta["counters"], load_file(str(folder / "weights.safetensors"))


# what a run writes into output.dir; all of it goes when a new run replaces an old one
RUN_ARTEFACTS = ("state", "last", "best", "config.yaml", "metrics.jsonl", "loss_curve.png", "samlora")


def holds_run(folder: Path) -> bool:
    """Whether ``folder`` holds a run that training would lose: resume state or saved weights.

    A folder where a run failed at start-up (only ``config.yaml``) holds none.
    """
    folder = Path(folder)
    return (folder / STATE_DIR / "trainer_state.json").is_file() or any(
        (folder / name).is_dir() for name in ("last", "best")
    )
