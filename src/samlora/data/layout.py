"""Finding the splits of a data folder and opening one of them, whatever its layout.

Layouts understood (``format="auto"`` tries them in this order):

- a COCO json file given as root: one split, images beside the file;
- ``root/annotations/<name>.json`` (``instances_<split>.json`` -> split ``<split>``) with images in
  ``root/<split>/``, ``root/images/<split>/``, ``root/images/`` or ``root``, first folder that exists;
- Roboflow COCO export: ``root/<split>/_annotations.coco.json`` with the images beside it (also
  a single ``*.json`` in the split folder), or ``root/_annotations.coco.json`` for one split;
- a single ``*.json`` directly in ``root`` (one split, images beside it);
- mask folders (``images/`` + ``masks/``, see :mod:`samlora.data.masks`).

Split names match through aliases (``valid`` = ``val`` = ``validation``; ``train2017`` = ``train``).
A folder with one COCO file only (no split in its name) serves any split asked for with
:func:`open_split`, but is not an optional split for :func:`open_split_if_present`, so a training
file is never silently reused for validation.
"""

from __future__ import annotations

import inspect
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from samlora.errors import DataError

from .coco import read_coco
from .masks import canonical_split, mask_folder_splits, pair_dirs, read_mask_folder
from .records import SegDataset

log = logging.getLogger(__name__)

ROBOFLOW_JSON = "_annotations.coco.json"
FORMATS = ("auto", "coco", "masks")
_MASK_OPTIONS = tuple(p for p in inspect.signature(read_mask_folder).parameters if p not in ("root", "split"))


@dataclass(frozen=True)
class SplitSource:
    """Where one split of a data folder lives.

    ``how``: ``file`` (a single COCO json), ``annotations`` (``root/annotations/``), ``roboflow``
    (``root/<split>/_annotations.coco.json``) for COCO; ``folder``, ``list``, ``rest`` or ``seeded``
    for mask folders. ``annotation_file``/``image_root`` are set for COCO splits only.
    """

    name: str
    format: Literal["coco", "masks"]
    how: str
    annotation_file: Path | None = None
    image_root: Path | None = None


def _split_name(text: str) -> str:
    """The split a file or folder name talks about (``instances_val2017`` -> ``val``), else ``all``."""
    for token in re.split(r"[^a-z0-9]+", text.lower()):
        if canonical_split(token) in ("train", "val", "test"):
            return token
    return "all"


def _single_file(path: Path, image_root: Path) -> dict[str, SplitSource]:
    name = _split_name(path.stem if path.name != ROBOFLOW_JSON else image_root.name)
    return {name: SplitSource(name, "coco", "file", path, image_root)}


def _coco_splits(root: Path) -> dict[str, SplitSource]:
    if root.is_file():
        return _single_file(root, root.parent) if root.suffix.lower() == ".json" else {}
    if not root.is_dir():
        return {}
    annotations = root / "annotations"
    if annotations.is_dir() and any(annotations.glob("*.json")):
        out: dict[str, SplitSource] = {}
        for path in sorted(annotations.glob("*.json")):
            name = path.stem.removeprefix("instances_")
            folders = (root / name, root / "images" / name, root / "images", root)
            image_root = next(f for f in folders if f.is_dir())
            out[name] = SplitSource(name, "coco", "annotations", path, image_root)
        return out
    if (root / ROBOFLOW_JSON).is_file():
        return _single_file(root / ROBOFLOW_JSON, root)
    out = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        jsons = (
            [folder / ROBOFLOW_JSON] if (folder / ROBOFLOW_JSON).is_file() else sorted(folder.glob("*.json"))
        )
        if len(jsons) == 1 and (jsons[0].name == ROBOFLOW_JSON or pair_dirs(folder) is None):
            out[folder.name] = SplitSource(folder.name, "coco", "roboflow", jsons[0], folder)
    if out:
        return out
    jsons = sorted(root.glob("*.json"))
    return _single_file(jsons[0], root) if len(jsons) == 1 else {}


def _contents(root: Path) -> str:
    if not root.is_dir():
        return "a file" if root.exists() else "nothing: it does not exist"
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in root.iterdir())
    return (
        ", ".join(names[:25]) + (f", ... ({len(names)} entries)" if len(names) > 25 else "")
        or "an empty folder"
    )


def _mask_kwargs(options: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(options) - set(_MASK_OPTIONS))
    if unknown:
        raise TypeError(f"unknown data option(s) {unknown}; known: {list(_MASK_OPTIONS)}")
    return options


def find_splits(root: Path | str, format: str = "auto", **mask_options: Any) -> dict[str, SplitSource]:
    """Split name (as found: folder, json or list name) -> :class:`SplitSource`.

    ``mask_options`` are those of :func:`read_mask_folder` (``val_fraction``/``test_fraction`` decide
    which seeded splits exist). Raises :class:`DataError` when ``root`` holds no data set of ``format``.
    """
    root = Path(root)
    options = _mask_kwargs(mask_options)
    if format not in FORMATS:
        raise DataError(f"data.format must be one of {FORMATS}, not {format!r}")
    if not root.exists():
        raise DataError(
            f"data root {root} does not exist; set data.root to a COCO export, a COCO json file or "
            f"a folder with images/ and masks/"
        )
    if format in ("auto", "coco"):
        splits = _coco_splits(root)
        if splits or format == "coco":
            if not splits:
                raise DataError(
                    f"{root} holds no COCO json (found: {_contents(root)}). Fix: point data.root at "
                    f"the json, at a Roboflow export (<split>/{ROBOFLOW_JSON}) or at a folder with "
                    f"annotations/*.json"
                )
            return splits
    found = mask_folder_splits(root, options.get("val_fraction", 0.1), options.get("test_fraction", 0.0))
    if not found:
        raise DataError(
            f"{root} is not a data set samlora can read (found: {_contents(root)}). Fix: use a COCO "
            f"export (<split>/{ROBOFLOW_JSON} or annotations/instances_<split>.json) or images/ + "
            f"masks/ folders with matching file names"
        )
    return {name: SplitSource(name, "masks", how) for name, how in found.items()}


def _match(splits: dict[str, SplitSource], split: str) -> SplitSource | None:
    wanted = canonical_split(split)
    exact = [s for name, s in splits.items() if name == split]
    alias = [s for name, s in splits.items() if canonical_split(name) == wanted]
    return (exact or alias or [None])[0]


def _open(root: Path, source: SplitSource, split: str, options: dict[str, Any]) -> SegDataset:
    if source.format == "masks":
        return read_mask_folder(root, split, **options)
    assert source.annotation_file is not None and source.image_root is not None
    data_root = root.parent if root.is_file() else root
    ds = read_coco(source.annotation_file, source.image_root, split=split, data_root=data_root)
    ds.root = root
    return ds


def open_split(root: Path | str, split: str, format: str = "auto", **mask_options: Any) -> SegDataset:
    """Open one split (listing only; see :func:`samlora.data.check.check_dataset` for checks).

    A folder with a single COCO file serves any split name. Raises :class:`DataError` naming the
    splits and the folder contents when the split is not there.
    """
    root = Path(root)
    splits = find_splits(root, format, **mask_options)
    source = _match(splits, split)
    if source is None and len(splits) == 1:
        only = next(iter(splits.values()))
        if only.how == "file":
            log.debug("%s has a single COCO file; using it as the '%s' split", root, split)
            source = only
    flat = all(s.format == "masks" and s.how in ("seeded", "list", "rest") for s in splits.values())
    if source is None and flat and split == "all":  # every image of a flat images/ + masks/ folder
        return read_mask_folder(root, None, **mask_options)
    if source is None:
        hint = (
            f" This is a flat images/ + masks/ folder: get a '{split}' split with data.test_fraction (e.g. "
            "--data.test_fraction 0.2, a seeded split shared by every training seed; set it when training "
            "too, so those images are held out) or evaluate every image with --split all."
            if flat
            else ""
        )
        raise DataError(
            f"{root} has no '{split}' split; splits found: {', '.join(splits) or 'none'} (folder holds: "
            f"{_contents(root)}). Fix: name one of them (train: --data.train_split / --data.valid_split; eval and data check: --split)"
            + hint
        )
    return _open(root, source, split, mask_options)


def open_split_if_present(
    root: Path | str, split: str, format: str = "auto", **mask_options: Any
) -> SegDataset | None:
    """Like :func:`open_split` for optional splits (valid, test): ``None`` when the split is absent."""
    root = Path(root)
    source = _match(find_splits(root, format, **mask_options), split)
    if source is None:
        log.debug("%s has no '%s' split", root, split)
        return None
    return _open(root, source, split, mask_options)
