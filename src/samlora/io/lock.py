"""The advisory lock of a run folder: one writer at a time, named when it refuses a second one.

``RUN/.samlora.lock`` holds the holder's pid, host, command and start time, and is locked with
``flock`` (the kernel releases it when the holder dies, however it dies). A second
``samlora train`` or ``--resume`` on a held folder is refused naming the holder; a lock file left
by a dead process is taken over with a message. Readers (predict, eval, merge) never take it:
they read a consistent snapshot (:func:`samlora.io.atomic.read_snapshot`) and change nothing.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import sys
from datetime import datetime, timezone
from pathlib import Path

from samlora.errors import TrainingError

from . import faults
from .disk import describe, fix_for

try:
    import fcntl
except ImportError:  # Windows: exclusive creation + a liveness check instead
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

LOCK_FILE = ".samlora.lock"


def _holder(text: str) -> str:
    """A lock record in words: ``pid 123 on host h (samlora train, since ...)``."""
    try:
        record = json.loads(text)
        return (
            f"pid {record['pid']} on host {record['host']} ({record.get('command', 'samlora')}, "
            f"since {record.get('since', '?')})"
        )
    except (ValueError, TypeError, KeyError):
        return "another process (its lock record is not written yet)"


def _alive(text: str) -> bool:
    """Whether the holder recorded in ``text`` still runs (same host only; other hosts count as alive)."""
    try:
        record = json.loads(text)
        pid, host = int(record["pid"]), record["host"]
    except (ValueError, TypeError, KeyError):
        return False
    if host != socket.gethostname():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunLock:
    """Hold ``folder``'s lock while the ``with`` block runs (creating the folder if needed).

    Raises :class:`TrainingError` when another live process holds it, or when the folder cannot
    be written (read-only, permission denied, disk full): checked before anything is loaded.
    """

    def __init__(self, folder: Path | str, command: str = "samlora train"):
        self.folder, self.command = Path(folder), command
        self.path = self.folder / LOCK_FILE
        self.fd: int | None = None
        self.created = False

    def _unwritable(self, err: OSError) -> TrainingError:
        return TrainingError(
            f"output folder {self.folder} is not writable: {describe(err)}; {fix_for(err)} "
            "(or pass another --output.dir). Nothing was loaded or written"
        )

    def _in_use(self, text: str) -> TrainingError:
        return TrainingError(
            f"{self.folder} is in use by {_holder(text)}: only one `samlora train` (or --resume) may write a "
            "run folder. Wait until it ends or stop it, or pass another --output.dir"
        )

    def _open(self) -> tuple[int, str]:
        """Open and lock the lock file; return the descriptor and the record found in it."""
        while True:
            faults.point("lock", self.path)
            if fcntl is None:
                try:
                    fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
                    return fd, ""
                except FileExistsError:
                    text = self.path.read_text(errors="replace")
                    if _alive(text):
                        raise self._in_use(text) from None
                    self.path.unlink(missing_ok=True)
                    fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
                    return fd, text
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                text = os.pread(fd, 4096, 0).decode("utf-8", "replace")
                os.close(fd)
                raise self._in_use(text) from None
            try:  # the holder deletes the file when it lets go: lock the file that is there now
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                return fd, os.pread(fd, 4096, 0).decode("utf-8", "replace")
            os.close(fd)

    def acquire(self) -> RunLock:
        self.created = not self.folder.exists()
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd, previous = self._open()
        except OSError as err:
            self._remove_created()
            raise self._unwritable(err) from err
        except BaseException:
            self._remove_created()
            raise
        self.fd = fd
        if previous.strip():
            log.warning(
                "%s: took over the lock left by %s, which no longer runs (it was killed or crashed)",
                self.folder, _holder(previous),
            )  # fmt: skip
        record = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": self.command,
            "since": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "argv": sys.argv[1:][:20],
        }
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
            os.fsync(fd)
        except OSError as err:
            self.release()
            raise self._unwritable(err) from err
        return self

    def release(self) -> None:
        if self.fd is None:
            return
        with contextlib.suppress(OSError):  # still held: nobody can lock the old file meanwhile
            self.path.unlink(missing_ok=True)
        os.close(self.fd)
        self.fd = None
        self._remove_created()

    def _remove_created(self) -> None:
        if self.created:
            with contextlib.suppress(OSError):
                self.folder.rmdir()  # only when a failed start left it empty

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
