"""Work that only the main process of a launch does, with its errors shared by every process.

In a multi-process run (``torchrun``, ``accelerate launch``) the main process alone takes the run
folder's lock, recovers cut-short saves, writes the config and the checkpoints. If such a step
fails there and the other processes are not told, they wait at the next barrier until gloo says
"Connection closed by peer" with a traceback (or NCCL's timeout runs out). :func:`on_main` runs the
step on the main process and hands its outcome to all of them, so every process stops with the
same message.

The outcome travels in tensors that this module keeps for the life of the process. A collective's
tensors are released by the process group's worker thread when it is done with them; had Python
already dropped them, that thread would need the GIL to free them, while the main thread, tearing
the process group down at the end of the run, holds the GIL and waits for that thread. With
``accelerate.utils.broadcast_object_list`` (temporary tensors) that deadlock hung the end of 2
of 12 two-process CPU runs here (``py-spy``: gloo's destructor joining a worker that waits
for the GIL in ``~AsyncBroadcastWork``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import torch
from accelerate import Accelerator

from samlora.errors import SamloraError, TrainingError

T = TypeVar("T")

_KEPT: list[torch.Tensor] = []  # every tensor a collective here used: never freed by gloo's thread
_FLAGS: dict[str, torch.Tensor] = {}  # per device: the outcome's length in bytes (0: success)


def _in_words(err: BaseException) -> str:
    if isinstance(err, SamloraError):
        return str(err)
    return f"the main process failed ({type(err).__name__}: {err}); its log has the details"


def _shared(accelerator: Accelerator, message: str | None) -> str | None:
    """The main process's ``message`` (None: success) on every process."""
    device = accelerator.device
    flag = _FLAGS.get(str(device))
    if flag is None:
        flag = _FLAGS[str(device)] = torch.zeros(1, dtype=torch.int64, device=device)
    data = (message or "").encode("utf-8")
    flag.fill_(len(data))
    torch.distributed.broadcast(flag, src=0)
    size = int(flag.item())
    if not size:
        return None
    buffer = torch.zeros(size, dtype=torch.uint8, device=device)
    if accelerator.is_main_process:
        buffer.copy_(torch.tensor(list(data), dtype=torch.uint8))
    _KEPT.append(buffer)
    torch.distributed.broadcast(buffer, src=0)
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
        accelerator.wait_for_everyone()
        if error is None and message is not None:
            raise TrainingError(message)
    if error is not None:
        raise error
    return value
