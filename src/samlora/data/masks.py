"""Mask-folder data sets (Kvasir-SEG, CVC-ClinicDB, ...) -> :class:`SegDataset` (listing only).

Layout: ``root/images/`` and ``root/masks/`` (also ``image``, ``imgs``, ``Original`` and ``mask``,
``gt``, ``Ground Truth``), files paired by their path without extension; a mask may add a suffix
``_mask``, ``_seg``, ``_gt`` or ``_label`` to its image's stem. Splits, first match wins:

1. sub-folders ``root/<split>/images`` + ``root/<split>/masks``;
2. split lists ``root/train.txt``, ``root/val.txt`` (or ``valid.txt``, ``validation.txt``),
   ``root/test.txt``, one file name or stem per line (``#`` comments allowed); without
   ``train.txt``, train is every image in no other list; with it, images in no list are left out
   (a warning with the train split);
3. otherwise a seeded random split: pairs sorted by name, permuted with
   ``numpy.random.default_rng(seed)``; ``round(n * val_fraction)`` go to val (at least 1 when the
   fraction is > 0 and n >= 2), the next ``round(n * test_fraction)`` to test, the rest to train.
   The same files and seed always give the same split; adding files changes it.

Split names ``valid``, ``val`` and ``validation`` are the same split. ``split=None`` reads every pair.

Objects are not listed here: records carry ``mask_path`` and ``mask_kind`` and
:mod:`samlora.data.decode` makes the objects. ``mask_kind="auto"``: JPEG masks are binary; else up
to 16 masks are read: with >= 2 foreground classes in ``class_names`` and every value found among
them -> multiclass; at most two values in every mask -> binary; more values and ``class_names``
given -> multiclass; otherwise an error Problem asks for ``data.mask_type``.

Severity: unpaired images or masks are warnings (left out, nothing is learned wrongly; reported
with the train split only when splits share one folder); two images or two masks for one name,
a list entry matching no image or an image without mask, files escaping the root, an unknown
mask type and multiclass masks without ``class_names`` are errors; an image in two split lists is
a warning (leakage between splits).

A mask type detected from the sample (``mask_kind_detected``) is checked against every mask by
:mod:`samlora.data.check`: a lossless mask with more values than its type allows is an error there.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from samlora.errors import DataError

from .decode import BINARY_OBJECTS, two_values
from .images import ESCAPE_MESSAGE, IMAGE_EXTENSIONS, load_label_map, safe_path
from .records import Category, ImageRecord, Problem, SegDataset, Severity

log = logging.getLogger(__name__)

IMAGE_DIR_NAMES = ("images", "image", "imgs", "original")
MASK_DIR_NAMES = ("masks", "mask", "gt", "ground truth", "groundtruth", "ground_truth")
MASK_SUFFIXES = ("_mask", "_seg", "_gt", "_label")
MASK_KINDS = ("auto", "binary", "multiclass", "instance")
_SPLIT_ALIASES = {
    "val": "val",
    "valid": "val",
    "validation": "val",
    "train": "train",
    "training": "train",
    "test": "test",
    "testing": "test",
}
_LIST_NAMES = {"train": ("train",), "val": ("val", "valid", "validation"), "test": ("test",)}
_AUTO_SAMPLE = 16
_Pairing = tuple[dict[str, tuple[Path, Path]], list[Path], list[Path]]
"""(key -> (image, mask), unpaired images, unpaired masks)."""


def canonical_split(name: str) -> str:
    """``valid``/``val``/``validation``/``val2017`` -> ``val``; likewise train and test; others lower-cased."""
    lowered = name.strip().lower()
    bare = lowered.rstrip("0123456789")
    return _SPLIT_ALIASES.get(lowered) or _SPLIT_ALIASES.get(bare) or lowered


def pair_dirs(folder: Path) -> tuple[Path, Path] | None:
    """``(images dir, masks dir)`` directly inside ``folder``, or ``None``."""
    if not folder.is_dir():
        return None
    children = {p.name.lower(): p for p in sorted(folder.iterdir()) if p.is_dir()}
    images = next((children[n] for n in IMAGE_DIR_NAMES if n in children), None)
    masks = next((children[n] for n in MASK_DIR_NAMES if n in children), None)
    return (images, masks) if images and masks else None


def _list_files(root: Path) -> dict[str, list[str]]:
    """Split list name (canonical) -> the list file's name, for the lists present in ``root``."""
    found: dict[str, list[str]] = {}
    for split, names in _LIST_NAMES.items():
        found[split] = [f"{n}.txt" for n in names if (root / f"{n}.txt").is_file()]
    return {k: v for k, v in found.items() if v}


def mask_folder_splits(root: Path, val_fraction: float = 0.1, test_fraction: float = 0.0) -> dict[str, str]:
    """Split name -> how it is defined (``folder``, ``list``, ``rest``, ``seeded``); empty if no mask folder."""
    root = Path(root)
    if not root.is_dir():
        return {}
    folders = {p.name: "folder" for p in sorted(root.iterdir()) if p.is_dir() and pair_dirs(p)}
    if folders:
        return folders
    if pair_dirs(root) is None:
        return {}
    lists = _list_files(root)
    if lists:
        splits = {split: "list" for split in lists}
        splits.setdefault("train", "rest")
        return splits
    splits = {"train": "seeded"}
    if val_fraction > 0:
        splits["val"] = "seeded"
    if test_fraction > 0:
        splits["test"] = "seeded"
    return splits


def _add(problems: list[Problem], severity: Severity, file: Path | str, message: str, fix: str = "") -> None:
    problems.append(Problem(severity, str(file), None, message, fix))


def _files(folder: Path, root: Path, problems: list[Problem]) -> dict[str, list[Path]]:
    """Key (path relative to ``folder`` without extension) -> image files under ``folder``."""
    out: dict[str, list[Path]] = {}
    for path in sorted(folder.rglob("*")):
        if path.name.startswith(".") or path.suffix.lower() not in IMAGE_EXTENSIONS or path.is_dir():
            continue
        if safe_path(root, path.relative_to(root).as_posix()) is None:
            msg = f"{ESCAPE_MESSAGE} (a link leading outside); it is left out"
            _add(problems, "error", path, msg, "copy the file into the data folder")
            continue
        out.setdefault(path.relative_to(folder).with_suffix("").as_posix(), []).append(path)
    return out


def _pairs(images_dir: Path, masks_dir: Path, root: Path, problems: list[Problem]) -> _Pairing:
    """Pair images with masks: (key -> (image, mask), unpaired images, unpaired masks)."""
    images = _files(images_dir, root, problems)
    masks = _files(masks_dir, root, problems)
    suffixed: dict[str, list[Path]] = {}
    for key, paths in masks.items():
        for suffix in MASK_SUFFIXES:
            if key.lower().endswith(suffix) and len(key) > len(suffix):
                suffixed.setdefault(key[: -len(suffix)], []).extend(paths)
    pairs: dict[str, tuple[Path, Path]] = {}
    used: set[Path] = set()
    unpaired_images: list[Path] = []
    for key, paths in images.items():
        found = masks.get(key) or suffixed.get(key) or []
        used.update(found)
        if len(paths) > 1 or len(found) > 1:
            what = f"images share the name '{key}'" if len(paths) > 1 else f"masks match image '{key}'"
            names = ", ".join(p.name for p in (paths if len(paths) > 1 else found))
            _add(problems, "error", paths[0], f"{what} ({names}); it is left out", "keep one file per name")
        elif not found:
            unpaired_images.append(paths[0])
        else:
            pairs[key] = (paths[0], found[0])
    unpaired_masks = [p for paths in masks.values() for p in paths if p not in used]
    return pairs, unpaired_images, unpaired_masks


def _report_unpaired(pairing: _Pairing, masks_dir: Path, problems: list[Problem]) -> None:
    suffixes = "/".join(MASK_SUFFIXES)
    for path in pairing[1]:
        fix = f"add {masks_dir.name}/{path.stem}.png (all black = no objects); names may add {suffixes}"
        _add(problems, "warning", path, f"image has no mask in {masks_dir}; it is left out", fix)
    for path in pairing[2]:
        _add(problems, "warning", path, "mask has no image of the same name; it is ignored", "add the image")


def _read_list(root: Path, names: list[str], pairing: _Pairing, problems: list[Problem]) -> list[str]:
    """Keys listed in the split list files ``names`` (in their order, without repeats)."""
    pairs, unpaired = pairing[0], pairing[1]
    lookup: dict[str, str] = {}
    for key, (image, _) in pairs.items():
        for alias in (key, image.name, image.stem, f"{image.parent.name}/{image.name}"):
            lookup.setdefault(alias, key)
    unpaired_names = {alias for p in unpaired for alias in (p.name, p.stem)}
    keys: list[str] = []
    for name in names:
        lines = (root / name).read_text(encoding="utf-8", errors="replace").splitlines()
        for number, line in enumerate(lines, start=1):
            entry = line.strip().replace("\\", "/")
            if not entry or entry.startswith("#"):
                continue
            head, _, rest = entry.partition("/")
            tail = rest if rest and head.lower() in IMAGE_DIR_NAMES else entry
            key = lookup.get(entry) or lookup.get(tail) or lookup.get(Path(tail).with_suffix("").as_posix())
            if key is None:
                why = (
                    "has no mask"
                    if {Path(tail).name, Path(tail).stem} & unpaired_names
                    else "matches no image"
                )
                problems.append(
                    Problem("error", str(root / name), f"line {number}", f"'{entry}' {why}", "fix it")
                )
            elif key not in keys:
                keys.append(key)
    return keys


def _seeded(keys: list[str], split: str, val_fraction: float, test_fraction: float, seed: int) -> list[str]:
    n = len(keys)
    order = [keys[i] for i in np.random.default_rng(seed).permutation(n)]
    n_val = max(round(n * val_fraction), 1 if val_fraction > 0 and n >= 2 else 0)
    n_test = max(round(n * test_fraction), 1 if test_fraction > 0 and n >= 3 else 0)
    n_val = min(n_val, max(n - 1, 0))
    n_test = min(n_test, max(n - 1 - n_val, 0))
    parts = {"val": order[:n_val], "test": order[n_val : n_val + n_test], "train": order[n_val + n_test :]}
    return sorted(parts[split])


def _distinct(label: np.ndarray) -> np.ndarray:
    """The sorted distinct values of a label map (binary masks, the common case, without a sort)."""
    pair = two_values(label)
    return np.unique(np.array(pair, dtype=label.dtype)) if pair is not None else np.unique(label)


def _detect_kind(
    masks: list[Path], class_names: dict[int, str], root: Path, problems: list[Problem]
) -> str | None:
    lossless = [m for m in masks if m.suffix.lower() not in (".jpg", ".jpeg")]
    picks = np.unique(
        np.linspace(0, len(lossless) - 1, num=min(len(lossless), _AUTO_SAMPLE)).round().astype(int)
    )
    values = []
    for i in picks if lossless else []:
        try:
            values.append(_distinct(load_label_map(lossless[i])))
        except DataError:  # the deep check reports unreadable masks
            continue
    union = {int(v) for vals in values for v in vals}
    foreground = {k for k in class_names if k != 0}
    if len(foreground) >= 2 and union - {0} and union <= foreground | {0}:
        return "multiclass"
    if all(len(v) <= 2 for v in values):
        return "binary"
    if class_names:
        return "multiclass"
    widest = max(values, key=len)
    shown = ", ".join(str(int(v)) for v in widest[:8]) + (", ..." if len(widest) > 8 else "")
    msg = f"masks hold up to {len(widest)} distinct values ({shown}), so they are not binary masks"
    fix = "set data.mask_type to multiclass (value = class id; give data.class_names) or instance (value = object)"
    _add(problems, "error", root, msg, fix)
    return None


def _categories(
    kind: str | None, class_names: dict[int, str], root: Path, problems: list[Problem]
) -> list[Category]:
    names = {k: v for k, v in sorted(class_names.items()) if k != 0}
    if kind is None:
        return []
    if kind == "multiclass":
        if not names:
            fix = "set data.class_names, pixel value -> name, e.g. {1: polyp, 2: instrument}"
            _add(problems, "error", root, "multiclass masks need class names", fix)
        return [Category(k, v) for k, v in names.items()]
    if kind == "instance" and len(names) > 1:
        msg = "instance masks have one category; data.class_names only names it"
        _add(problems, "warning", root, msg, "use data.mask_type multiclass for class-valued masks")
    single = names.get(1) or (next(iter(names.values())) if len(names) == 1 else "object")
    return [Category(1, single)]


def _check_options(mask_kind: str, binary_objects: str, val_fraction: float, test_fraction: float) -> None:
    if mask_kind not in MASK_KINDS:
        raise DataError(f"data.mask_type must be one of {MASK_KINDS}, not {mask_kind!r}")
    if binary_objects not in BINARY_OBJECTS:
        raise DataError(f"data.binary_objects must be one of {BINARY_OBJECTS}, not {binary_objects!r}")
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        msg = f"data.val_fraction ({val_fraction}) and data.test_fraction ({test_fraction})"
        raise DataError(msg + " must be in [0, 1) and add up to less than 1")


def _resolve_split(root: Path, split: str | None, available: dict[str, str]) -> tuple[str, Path]:
    """(how the split is defined, the folder holding its images/ and masks/)."""
    if not available:
        found = ", ".join(sorted(p.name for p in root.iterdir())[:20]) if root.is_dir() else "not a folder"
        msg = f"{root} has no images/ and masks/ folders (found: {found})"
        raise DataError(
            msg + f". Fix: put images in {root}/images and masks with the same names in {root}/masks"
        )
    if split is None:
        if set(available.values()) == {"folder"}:
            raise DataError(f"{root} has splits {', '.join(available)} in sub-folders; name one")
        return "all", root
    match = [name for name in available if canonical_split(name) == canonical_split(split)]
    if not match:
        msg = f"{root} has no '{split}' split (splits: {', '.join(available)})"
        raise DataError(msg + ". Fix: set the split name to one of them, or add it")
    how = available[match[0]]
    return how, root / match[0] if how == "folder" else root


def _listed_keys(root: Path, wanted: str, how: str, pairing: _Pairing, problems: list[Problem]) -> list[str]:
    lists = _list_files(root)
    listed = {
        s: _read_list(root, names, pairing, problems if s == wanted else []) for s, names in lists.items()
    }
    keys = (
        listed[wanted]
        if how == "list"
        else sorted(set(pairing[0]) - {k for ks in listed.values() for k in ks})
    )
    unlisted = sorted(set(pairing[0]) - {k for ks in listed.values() for k in ks})
    if how == "list" and wanted == "train" and unlisted:
        shown = ", ".join(unlisted[:5]) + (", ..." if len(unlisted) > 5 else "")
        msg = f"{len(unlisted)} image(s) are in no split list ({shown}); they are left out"
        _add(problems, "warning", root / lists["train"][0], msg, "add them to train.txt, val.txt or test.txt")
    for other, other_keys in listed.items():
        for key in sorted(set(keys) & set(other_keys)) if other != wanted else []:
            msg = f"image '{key}' is in both the '{wanted}' and the '{other}' split"
            _add(problems, "warning", root / lists[other][0], msg, "list every image in one split only")
    return keys


def read_mask_folder(
    root: Path | str,
    split: str | None = None,
    mask_kind: str = "auto",
    class_names: dict[int, str] | None = None,
    binary_objects: str = "components",
    min_object_area: int = 0,
    val_fraction: float = 0.1,
    test_fraction: float = 0.0,
    seed: int = 0,
) -> SegDataset:
    """List one split of an images/ + masks/ folder (see the module docstring for layout and splits).

    ``binary_objects`` and ``min_object_area`` are stored in ``decode_options`` for decoding.

    Raises:
        DataError: no images/ + masks/ folders, an unknown split, or invalid options.
    """
    root = Path(root)
    class_names = {int(k): str(v) for k, v in (class_names or {}).items()}
    _check_options(mask_kind, binary_objects, val_fraction, test_fraction)
    how, folder = _resolve_split(root, split, mask_folder_splits(root, val_fraction, test_fraction))
    wanted = canonical_split(split) if split is not None else "all"
    problems: list[Problem] = []
    images_dir, masks_dir = pair_dirs(folder)  # type: ignore[misc]
    pairing = _pairs(images_dir, masks_dir, root, problems)
    pairs = pairing[0]
    if how in ("folder", "all") or wanted == "train":
        _report_unpaired(pairing, masks_dir, problems)
    if how in ("list", "rest"):
        keys = _listed_keys(root, wanted, how, pairing, problems)
    elif how == "seeded":
        keys = _seeded(sorted(pairs), wanted, val_fraction, test_fraction, seed)
    else:
        keys = sorted(pairs)
    if not pairs:
        msg = f"no image in {images_dir} has a mask in {masks_dir}"
        _add(
            problems,
            "error",
            folder,
            msg,
            f"masks pair with images by name, may add {'/'.join(MASK_SUFFIXES)}",
        )
    kind: str | None = mask_kind
    if mask_kind == "auto":
        kind = (
            _detect_kind([pairs[k][1] for k in sorted(pairs)], class_names, root, problems)
            if pairs
            else "binary"
        )
    categories = _categories(kind, class_names, root, problems)
    records = [
        ImageRecord(
            image_id=key,
            file_name=pairs[key][0].relative_to(root).as_posix(),
            path=pairs[key][0].resolve(),
            mask_path=pairs[key][1].resolve(),
            mask_kind=kind,  # type: ignore[arg-type]
        )
        for key in keys
    ]
    log.debug(
        "%s [%s]: %d images, %s masks (%s), %d problem(s)",
        root,
        wanted,
        len(records),
        kind,
        how,
        len(problems),
    )
    return SegDataset(
        root=root,
        split=split or "all",
        format="masks",
        images=records,
        categories=categories,
        problems=problems,
        decode_options={"binary_objects": binary_objects, "min_object_area": int(min_object_area)},
        mask_kind_detected=mask_kind == "auto",
    )
