"""Work that only the main process of a launch does, with its errors shared by every process.

In a multi-process run (``torchrun``, ``accelerate launch``) the main process alone takes the run
folder's lock, recovers cut-short saves, writes the config and the checkpoints. If such a step
fails there and the other processes are not told, they wait at the next barrier until gloo says
"Connection closed by peer" with a traceback (or NCCL's timeout runs out). :func:`on_main` runs the
step on the main process and hands its outcome to all of them, so every process stops with the
same message.

The outcome travels in collectives whose work handles this module keeps for the life of the
process. Gloo's worker threads run a collective and then drop their reference to its work object;
if that was the last reference, the worker frees the work's tensors, and freeing a tensor that has
a Python object needs the GIL. At the end of a run the main thread, holding the GIL, tears the
process group down (``end_training``, then the DDP reducer's last reference) and joins those
workers, so a worker still waiting for the GIL to free the last barrier's tensors hangs the run
for ever. With ``accelerate``'s ``broadcast_object_list`` and ``wait_for_everyone`` that hung 2 of
12 two-process CPU runs here; keeping the tensors alive does not help (a C++ reference to a tensor
holds its Python object, so dropping it needs the GIL all the same): 3 of 60 runs hung with four
busy loops on the two cores (``py-spy``: ``~ProcessGroupGloo`` joining a worker in
``~AsyncBarrierWork`` -> ``~AsyncBroadcastWork`` -> ``decref_pyobject``, waiting for the GIL).
With the works kept here, a worker only ever drops a reference that is not the last one: 0 of 80.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import torch
from accelerate import Accelerator

from samlora.errors import SamloraError, TrainingError

T = TypeVar("T")

_KEPT: list[torch.distributed.Work] = []  # every collective here, with its tensors: never freed by gloo
_FLAGS: dict[str, torch.Tensor] = {}  # per device: the outcome's length in bytes (0: success)


def _in_words(err: BaseException) -> str:
    if isinstance(err, SamloraError):
        return str(err)
    return f"the main process failed ({type(err).__name__}: {err}); its log has the details"


def _kept(work: torch.distributed.Work) -> None:
    """Wait for a collective's ``work`` and keep it, so that no gloo thread frees its tensors."""
    _KEPT.append(work)
    work.wait()


def _shared(accelerator: Accelerator, message: str | None) -> str | None:
    """The main process's ``message`` (None: success) on every process."""
    device = accelerator.device
    flag = _FLAGS.get(str(device))
    if flag is None:
        flag = _FLAGS[str(device)] = torch.zeros(1, dtype=torch.int64, device=device)
    data = (message or "").encode("utf-8")
    flag.fill_(len(data))
    _kept(torch.distributed.broadcast(flag, src=0, async_op=True))
    size = int(flag.item())
    if not size:
        return None
    buffer = torch.zeros(size, dtype=torch.uint8, device=device)
    if accelerator.is_main_process:
        buffer.copy_(torch.tensor(list(data), dtype=torch.uint8))
    _kept(torch.distributed.broadcast(buffer, src=0, async_op=True))
    return bytes(buffer.cpu().tolist()).decode("utf-8", "replace")


def on_main(accelerator: Accelerator, step: Callable[[], T]) -> T | None:
    """Run ``step`` on the main process only; every process returns together (a barrier).

    Returns ``step()``'s value on the main process and None elsewhere. When ``step`` raises, the
    main process raises that error and every other process a :class:`TrainingError` with its
    message (a user error's message unchanged).
    """
    value, error = None, None
    if accelerator.is_main_process:
        try:
            value = step()
        except Exception as err:  # shared below, then raised again
            error = err
    if accelerator.num_processes > 1:
        message = _shared(accelerator, None if error is None else _in_words(error))
        _kept(torch.distributed.barrier(async_op=True))  # accelerator.wait_for_everyone, keeping the work
        if error is None and message is not None:
            raise TrainingError(message)
    if error is not None:
        raise error
    return value
