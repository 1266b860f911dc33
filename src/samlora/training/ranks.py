"""Work that only the main process of a launch does, with its errors shared by every process.

In a multi-process run (``torchrun``, ``accelerate launch``) the main process alone takes the run
folder's lock, recovers cut-short saves, writes the config and the checkpoints. If such a step
fails there and the other processes are not told, they wait at the next barrier until gloo says
"Connection closed by peer" with a traceback (or NCCL's timeout runs out). :func:`on_main` runs the
step on the main process and hands its outcome to all of them, so every process stops with the
same message.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from accelerate import Accelerator
from accelerate.utils import broadcast_object_list

from samlora.errors import SamloraError, TrainingError

T = TypeVar("T")


def _in_words(err: BaseException) -> str:
    if isinstance(err, SamloraError):
        return str(err)
    return f"the main process failed ({type(err).__name__}: {err}); its log has the details"


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
        outcome = [None if error is None else _in_words(error)]
        broadcast_object_list(outcome, from_process=0)
        # and a real barrier: the root's broadcast may return before the others have received it.
        # Without one, 2 of 12 two-process CPU runs (`torchrun`, gloo) hung at the main process's
        # exit, its process group joining its threads forever; with it, 0 of 32
        accelerator.wait_for_everyone()
        if error is None and outcome[0] is not None:
            raise TrainingError(outcome[0])
    if error is not None:
        raise error
    return value
