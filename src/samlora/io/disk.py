"""Environment faults named in words (disk full, read-only, permission denied), and writability checks."""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path

from samlora.errors import SamloraError

_WORDS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ENOENT: "no such file or folder",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EISDIR: "it is a folder, not a file",
    errno.EMFILE: "too many open files",
    errno.EIO: "an input/output error of the device",
    errno.ENAMETOOLONG: "the file name is too long",
}
_FIXES = {
    errno.ENOSPC: "free space on that disk (or choose a folder on another one)",
    errno.EDQUOT: "free space within your quota (or choose a folder elsewhere)",
    errno.EROFS: "choose a folder on a writable disk",
    errno.EACCES: "choose a folder you may write to, or fix its permissions",
    errno.EPERM: "choose a folder you may write to, or fix its permissions",
}


def fault_errno(err: BaseException) -> int | None:
    """The errno of an environment fault: an ``OSError``, or a safetensors error that wraps one."""
    if isinstance(err, OSError) and err.errno is not None:
        return err.errno
    text = str(err)
    if "No space left" in text or "os error 28" in text:
        return errno.ENOSPC
    if "Read-only file system" in text or "os error 30" in text:
        return errno.EROFS
    if "Permission denied" in text or "os error 13" in text:
        return errno.EACCES
    return None


def is_disk_fault(err: BaseException) -> bool:
    """Whether ``err`` is an ``OSError`` or a library error wrapping one (safetensors reports ENOSPC
    as ``SafetensorError``)."""
    return (
        isinstance(err, OSError) or type(err).__name__ == "SafetensorError" and fault_errno(err) is not None
    )


def describe(err: BaseException) -> str:
    """``err`` in words: ``no space left on the device``, ``permission denied: /x``, ..."""
    if isinstance(err, MemoryError):
        return "out of memory"
    number = fault_errno(err)
    words = _WORDS.get(number) if number is not None else None
    if words is None:
        words = (err.strerror if isinstance(err, OSError) and err.strerror else str(err)) or type(
            err
        ).__name__
    filename = getattr(err, "filename", None)
    return f"{words} ({filename})" if filename else words


def fix_for(err: BaseException) -> str:
    """What to do about an environment fault, as a short imperative."""
    number = fault_errno(err)
    return _FIXES.get(number, "check the disk and the folder's permissions") if number else "check the disk"


def check_writable(folder: Path | str, what: str) -> Path:
    """Make sure ``folder`` can be written (or created), before any long work; creates nothing.

    A probe file is written and removed in ``folder``, or in its nearest existing parent when
    ``folder`` does not exist yet. Raises :class:`SamloraError` naming ``what`` (e.g. ``--output``),
    the folder, the fault and the fix.
    """
    folder = Path(folder).absolute()
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise SamloraError(f"{what} {folder}: {existing} is a file, not a folder; name a folder")
    probe = existing / f".samlora-write-test-{os.getpid()}"
    try:
        with open(probe, "wb") as f:
            f.write(b"ok")
    except OSError as err:
        raise SamloraError(
            f"{what} {folder} is not writable: {describe(err)}; {fix_for(err)}. Nothing was loaded or written"
        ) from err
    finally:
        with contextlib.suppress(OSError):
            probe.unlink()
    return folder
