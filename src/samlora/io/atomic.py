"""Writes that leave a complete file or folder at every instant, and reads that never repair.

Files: written to ``.NAME.tmp-TOKEN`` beside the destination, flushed, then renamed over it
(``os.replace``), so a reader sees the old or the new content, never half of one.

Folders (adapters, model folders, resume state) are replaced in four steps, each announced to the
test hook (:func:`samlora.io.faults.point`):

1. the new content is written into ``.NAME.tmp-TOKEN`` (incomplete while this runs);
2. it is renamed ``.NAME.new-TOKEN``: complete from here on;
3. the current ``NAME`` (if any) is renamed ``.NAME.old-TOKEN``;
4. ``.NAME.new-TOKEN`` is renamed ``NAME``; then ``.NAME.old-TOKEN`` is deleted.

A kill between 3 and 4 leaves no ``NAME`` but two complete copies beside it. The folder's writer
(the process that holds the run's lock) calls :func:`recover_dir` before it writes again: the
newest complete copy becomes ``NAME`` and every leftover goes. Readers call :func:`read_snapshot`
/ :func:`snapshot_dir`, which read the newest complete copy as it is at one instant and rename,
repair or delete nothing, so a reader can never disturb a live writer.
"""

from __future__ import annotations

import glob
import logging
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from . import faults

T = TypeVar("T")

log = logging.getLogger(__name__)

_KINDS = ("new", "old", "tmp")


def token() -> str:
    """A name part that sorts by creation time (nanoseconds) and is unique."""
    return f"{time.time_ns():016x}-{uuid.uuid4().hex[:6]}"


def beside(final: Path, kind: str) -> Path:
    """``final``'s temporary (``tmp``), complete (``new``) or moved-aside (``old``) sibling name."""
    return final.with_name(f".{final.name}.{kind}-{token()}")


def siblings(final: Path, kind: str) -> list[Path]:
    """Existing ``.NAME.<kind>-*`` siblings of ``final``, oldest first."""
    pattern = f".{glob.escape(final.name)}.{kind}-*"
    return sorted(final.parent.glob(pattern), key=lambda p: p.name)


def _fsync(path: Path) -> None:
    """Flush a file (or a folder's entries) to the disk; best effort where the OS refuses folders."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def write_bytes(path: Path | str, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file and a rename."""
    path = Path(path)
    tmp = beside(path, "tmp")
    try:
        faults.point("write", tmp)
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        faults.point("rename", tmp, path)
        os.replace(tmp, path)
    except Exception:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_text(path: Path | str, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` through a temporary file and a rename."""
    return write_bytes(path, text.encode("utf-8"))


def append_line(path: Path | str, line: str) -> None:
    """Append one line (a newline is added); a kill can leave only the last line torn."""
    path = Path(path)
    faults.point("append", path)
    with open(path, "a", encoding="utf-8") as f:
        f.write(line + "\n")


@contextmanager
def replacing_dir(final: Path | str) -> Iterator[Path]:
    """Yield an empty temporary folder; when the block ends, it replaces ``final`` (steps 1-4 above).

    The caller is ``final``'s writer: a replacement an earlier kill cut short is finished first
    (:func:`recover_dir`). If the block raises, the temporary folder is deleted and ``final`` is
    left as it was.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    recover_dir(final)
    tmp = beside(final, "tmp")
    try:
        faults.point("mkdir", tmp)
        tmp.mkdir()
        yield tmp
    except Exception:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    replace_dir(tmp, final)


def replace_dir(tmp: Path, final: Path) -> None:
    """Steps 2-4 for a finished ``tmp`` folder: never a moment without a complete copy on disk."""
    for file in tmp.rglob("*"):
        if file.is_file():
            _fsync(file)
    _fsync(tmp)
    ready = tmp.with_name(tmp.name.replace(".tmp-", ".new-", 1))
    faults.point("rename", tmp, ready)
    tmp.rename(ready)
    old = None
    if final.exists():
        old = beside(final, "old")
        faults.point("rename", final, old)
        final.rename(old)
    faults.point("rename", ready, final)
    ready.rename(final)
    _fsync(final.parent)
    if old is not None:
        faults.point("remove", old)
        shutil.rmtree(old, ignore_errors=True)


def recover_dir(final: Path | str) -> str | None:
    """For the folder's writer only: finish a replacement of ``final`` that was cut short.

    The newest complete copy (``.new-`` before ``.old-``, newest first) becomes ``final`` when it
    is newer than ``final`` or ``final`` is missing; every temporary and moved-aside copy goes.
    Returns what was done (for the log), or ``None`` when there was nothing to do.
    """
    final = Path(final)
    if not final.parent.is_dir():
        return None
    ready, aside, partial = (siblings(final, kind) for kind in _KINDS)
    done = None
    if ready:
        newest = ready.pop()
        if final.exists():
            moved = beside(final, "old")
            final.rename(moved)
            aside.append(moved)
        newest.rename(final)
        done = f"{final.name}: finished the replacement that was cut short (kept the newest complete copy)"
    elif aside and not final.exists():
        aside.pop().rename(final)
        done = f"{final.name}: put back the previous complete copy (its replacement was cut short)"
    for leftover in ready + aside + partial:
        _remove(leftover)
    if partial and done is None:
        done = f"{final.name}: removed {len(partial)} half-written temporary cop{'y' if len(partial) == 1 else 'ies'}"
    return done


def remove_temporary_files(folder: Path | str) -> list[str]:
    """Delete the ``.NAME.tmp-*`` files that writes cut short left in ``folder``; return their names."""
    gone = []
    for path in Path(folder).glob(".*.tmp-*"):
        if path.is_file():
            path.unlink(missing_ok=True)
            gone.append(path.name)
    return gone


def readable_dir(final: Path | str) -> Path | None:
    """Where the newest complete content of ``final`` is now, changing nothing.

    ``final`` itself, or while its replacement is under way (or was cut short by a kill) the
    complete copy beside it (``.new-`` first, then ``.old-``); ``None`` when there is none.
    """
    final = Path(final)
    if final.is_dir():
        return final
    if not final.parent.is_dir():
        return None
    for candidate in [*reversed(siblings(final, "new")), *reversed(siblings(final, "old"))]:
        if candidate.is_dir():
            return candidate
    return None


def read_snapshot(final: Path | str, attempts: int = 100) -> tuple[Path, dict[str, bytes]]:
    """Every file directly inside ``final``, read as one consistent version; changes nothing.

    All files are opened while the folder they come from stays the same (its inode is checked
    before and after), so a writer replacing ``final`` meanwhile makes this read again rather
    than mix two versions. Returns the folder read (``final``, or a complete copy beside it) and
    name -> content. Raises ``FileNotFoundError`` when there is no complete copy.
    """
    final = Path(final)
    for _ in range(attempts):
        source = readable_dir(final)
        if source is None:
            raise FileNotFoundError(str(final))
        handles = {}
        try:
            before = os.stat(source)
            for entry in sorted(os.scandir(source), key=lambda e: e.name):
                if entry.is_file():
                    handles[entry.name] = open(entry.path, "rb")  # noqa: SIM115 (all open at once)
            after = os.stat(source)
            if (before.st_ino, before.st_dev) == (after.st_ino, after.st_dev):
                return source, {name: f.read() for name, f in handles.items()}
        except FileNotFoundError:
            pass
        finally:
            for f in handles.values():
                f.close()
        time.sleep(0.005)  # the writer is between two renames: look again
    raise FileNotFoundError(f"{final} kept changing while it was read")


def read_pinned(final: Path | str, read: Callable[[str], T], attempts: int = 100) -> T:
    """``read(path)`` on one version of the folder ``final``, however many files it opens and when.

    For readers that take a folder path and open its files one after another (transformers'
    ``from_pretrained``): the folder is opened once and ``read`` gets a path through that open
    handle (``/proc/self/fd/N`` on Linux), so a writer renaming a new version into place
    meanwhile does not change what ``read`` sees. If the writer removes the version being read
    before ``read`` opened all of it, ``read`` runs again on the newest one. Changes nothing on
    disk. Where the OS has no such paths, ``read`` gets the folder's own path.
    """
    final = Path(final)
    for _ in range(attempts):
        source = readable_dir(final)
        if source is None:
            raise FileNotFoundError(str(final))
        try:
            handle = os.open(source, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        except FileNotFoundError:
            time.sleep(0.005)  # renamed between the look and the open
            continue
        try:
            pinned = f"/proc/self/fd/{handle}"
            path = pinned if os.path.isdir(pinned) else str(source)
            try:
                return read(path)
            except Exception:
                if os.fstat(handle).st_nlink > 0:
                    raise  # the version is still there: a real error of the reader
        finally:
            os.close(handle)
        time.sleep(0.005)  # the version went away while it was read: read the newest one
    raise FileNotFoundError(f"{final} kept changing while it was read")


@contextmanager
def snapshot_dir(final: Path | str) -> Iterator[Path]:
    """A private temporary copy of :func:`read_snapshot`'s files, for readers that need paths."""
    _, files = read_snapshot(final)
    with tempfile.TemporaryDirectory(prefix="samlora-snapshot-") as tmp:
        for name, data in files.items():
            (Path(tmp) / name).write_bytes(data)
        yield Path(tmp)
