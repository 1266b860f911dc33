"""Atomic files and folders: a complete copy at every instant; the writer recovers, readers change nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from samlora.io import faults
from samlora.io.atomic import (
    read_snapshot,
    readable_dir,
    recover_dir,
    replacing_dir,
    snapshot_dir,
    write_text,
)


def save(folder: Path, version: str) -> None:
    with replacing_dir(folder) as tmp:
        (tmp / "a.txt").write_text(version)
        (tmp / "b.txt").write_text(version * 2)


def names(parent: Path) -> list[str]:
    return sorted(p.name.split("-")[0] for p in parent.iterdir())


def test_a_kill_at_every_step_of_a_replacement_leaves_a_complete_copy(tmp_path: Path) -> None:
    points: list[str] = []
    folder = tmp_path / "run" / "last"
    save(folder, "1")
    with faults.injected(lambda op, path, target: points.append(op)):
        save(folder, "2")
    assert points == ["mkdir", "rename", "rename", "rename", "remove"]
    for at in range(1, len(points) + 1):
        save(folder, "1")

        def kill(op: str, path: Path, target: Path | None, at: int = at, count: dict = {"n": 0}) -> None:  # noqa: B006
            count["n"] += 1
            if count["n"] == at:
                raise faults.Killed

        with pytest.raises(faults.Killed), faults.injected(kill):
            save(folder, "2")
        before = names(folder.parent)
        source, files = read_snapshot(folder)  # a reader: one complete version, nothing changed
        assert files in ({"a.txt": b"1", "b.txt": b"11"}, {"a.txt": b"2", "b.txt": b"22"})
        assert names(folder.parent) == before
        recover_dir(folder)  # the writer: the newest complete copy, no leftovers
        assert names(folder.parent) == ["last"]
        newest = "2" if at >= 3 else "1"  # once renamed .new- (point 2 done), the new copy is complete
        assert (folder / "a.txt").read_text() == newest


def test_a_failed_write_leaves_the_old_folder_and_no_temporary_one(tmp_path: Path) -> None:
    folder = tmp_path / "best"
    save(folder, "1")
    with pytest.raises(OSError), replacing_dir(folder) as tmp:
        (tmp / "a.txt").write_text("2")
        raise OSError(28, "No space left on device")
    assert names(tmp_path) == ["best"] and (folder / "a.txt").read_text() == "1"


def test_readable_dir_and_snapshot_dir(tmp_path: Path) -> None:
    folder = tmp_path / "best"
    assert readable_dir(folder) is None
    with pytest.raises(FileNotFoundError):
        read_snapshot(folder)
    save(folder, "3")
    with snapshot_dir(folder) as copy:
        assert copy != folder and (copy / "b.txt").read_text() == "33"
    assert not copy.exists()


def test_write_text_replaces_atomically(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    write_text(path, "a: 1\n")
    with (
        pytest.raises(faults.Killed),
        faults.injected(lambda op, p, t: op == "rename" and (_ for _ in ()).throw(faults.Killed)),
    ):
        write_text(path, "a: 2\n")
    assert path.read_text() == "a: 1\n"
    write_text(path, "a: 3\n")
    assert path.read_text() == "a: 3\n"
