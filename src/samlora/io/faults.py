"""The internal test hook at every write, rename and removal of a save sequence.

Library code calls :func:`point` just before each step that changes the disk; nothing happens
unless a test installed a hook with :func:`injected` (in process: the hook may raise
:class:`Killed` to cut the sequence there, as a kill would, or an ``OSError`` such as ENOSPC), or
the environment variable ``SAMLORA_TEST_KILL_AT=N`` is set: the process then kills itself with
SIGKILL at the N-th point (counted from 1), which is how the suite checks a real kill.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

Hook = Callable[[str, Path, "Path | None"], None]
"""``hook(op, path, target)``: ``op`` is ``write`` (``path`` is about to be written), ``mkdir``
(the temporary folder ``path`` is about to be created), ``append``
(a line is about to be appended to ``path``), ``rename`` (``path`` is about to become ``target``),
``remove`` (``path`` is about to be deleted) or ``lock`` (the lock file ``path`` is about to be
created)."""

_hooks: list[Hook] = []
_count = {"n": 0}


class Killed(BaseException):
    """Raised by a test hook to stop a save sequence where a kill would (not an ``Exception``,
    so no ``except Exception`` clean-up runs)."""


def point(op: str, path: Path | str, target: Path | str | None = None) -> None:
    """Announce one step that changes the disk (a no-op outside the fault-injection tests)."""
    kill_at = os.environ.get("SAMLORA_TEST_KILL_AT")
    if not _hooks and not kill_at:
        return
    _count["n"] += 1
    if kill_at and _count["n"] == int(kill_at):
        os.kill(os.getpid(), signal.SIGKILL)
    for hook in list(_hooks):
        hook(op, Path(path), Path(target) if target is not None else None)


@contextmanager
def injected(hook: Hook) -> Iterator[None]:
    """Install ``hook`` at every :func:`point` while the block runs."""
    _hooks.append(hook)
    try:
        yield
    finally:
        _hooks.remove(hook)
