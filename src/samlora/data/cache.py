"""The decoded cache: every training image decoded once into the model's input frame.

A split's :class:`~samlora.data.frame.FrameSample` s are kept in memory when the split is small
and, for large ones, as one file per image in a cache folder, read back memory-mapped (the page
cache is shared by every DataLoader worker and every process on the machine):

- folder: ``data.cache_dir``, else ``$SAMLORA_CACHE/decoded`` (``~/.cache/samlora/decoded``);
- file: ``<key[:2]>/<key>.safetensors``, where ``key`` is the SHA-256 of the image file's bytes,
  the mask file's bytes or the record's COCO annotations, and every setting that changes the
  result (frame size and resize, mask kind, ``binary_objects``, ``min_object_area``,
  :data:`CACHE_VERSION`). A changed file or setting gets a new key; nothing is ever stale.
- writes go to a temporary name in the same folder and are renamed into place, so a reader (any
  process) sees a complete file or none; two processes writing one key write the same bytes.
- the folder is safe to delete at any time: a missing file is decoded again (and rewritten).

Only tensors and a JSON header are stored (safetensors), never pickle.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import struct
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

from .frame import Frame, FrameSample
from .records import ImageRecord

log = logging.getLogger(__name__)

CACHE_VERSION = 2
"""Bumped whenever the stored form changes, so old files are never read as new ones."""
_ARRAYS = ("image", "labels", "layers", "areas", "boxes", "category_ids", "iscrowd")
_NUMPY = {"U8": np.uint8, "I16": np.int16, "I32": np.int32, "I64": np.int64, "BOOL": np.bool_}


def default_cache_dir() -> Path:
    """``$SAMLORA_CACHE/decoded`` (``~/.cache/samlora/decoded`` without the variable)."""
    return Path(os.environ.get("SAMLORA_CACHE") or Path.home() / ".cache" / "samlora") / "decoded"


def record_key(record: ImageRecord, frame: Frame, options: dict[str, object]) -> str:
    """SHA-256 of what decoding ``record`` depends on: file contents and settings."""
    h = hashlib.sha256()
    settings = {
        "version": CACHE_VERSION,
        "frame": [frame.size, frame.resize],
        "kind": record.mask_kind,
        "options": {k: options[k] for k in sorted(options)},
    }
    h.update(json.dumps(settings, sort_keys=True).encode())
    for path in (record.path, record.mask_path):
        if path is not None:
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
            h.update(b"\0")
    objects = [[str(o.ann_id), o.category_id, o.segmentation, o.iscrowd] for o in record.objects]
    if record.mask_path is None:
        h.update(json.dumps(objects, sort_keys=True, default=str).encode())
    h.update(json.dumps([str(record.image_id), record.file_name]).encode())
    return h.hexdigest()


def write_sample(path: Path, sample: FrameSample) -> None:
    """Store ``sample`` at ``path`` atomically (temporary file in the same folder, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {name: np.ascontiguousarray(getattr(sample, name)) for name in _ARRAYS}
    meta = {
        "ann_ids": json.dumps(sample.ann_ids, default=str),
        "image_id": json.dumps(sample.image_id),
        "file_name": sample.file_name,
        "original_size": json.dumps(list(sample.original_size)),
    }
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        save_file(tensors, str(tmp), metadata=meta)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def read_sample(path: Path) -> FrameSample:
    """The sample stored at ``path``, its arrays memory-mapped read-only (no copy)."""
    with open(path, "rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(length))
    start = 8 + length
    meta = header.pop("__metadata__")
    arrays = {}
    for name, entry in header.items():
        begin, end = entry["data_offsets"]
        dtype = np.dtype(_NUMPY[entry["dtype"]])
        shape = tuple(entry["shape"])
        if end == begin:
            arrays[name] = np.zeros(shape, dtype)
        else:
            arrays[name] = np.memmap(path, dtype=dtype, mode="r", offset=start + begin, shape=shape)
    return FrameSample(
        **arrays,
        ann_ids=json.loads(meta["ann_ids"]),
        image_id=json.loads(meta["image_id"]),
        file_name=meta["file_name"],
        original_size=tuple(json.loads(meta["original_size"])),
    )


class DecodedCache:
    """The :class:`FrameSample` of each record of a split, decoded at most once.

    Args:
        records: the split's records (index ``i`` is record ``i``).
        decode: decodes one record into the frame (used for every sample not given to :meth:`put`).
        frame, options: what the samples depend on (part of each file's key).
        folder: the on-disk cache folder, or ``None`` to keep samples in memory.
        keep: ``False`` decodes every access again and keeps nothing (no cache).
    """

    def __init__(
        self,
        records: list[ImageRecord],
        decode: Callable[[ImageRecord], FrameSample],
        frame: Frame,
        options: dict[str, object],
        folder: Path | None = None,
        keep: bool = True,
    ):
        self.records = records
        self.decode = decode
        self.frame = frame
        self.options = options
        self.folder = Path(folder) if folder is not None else None
        self.keep = keep
        self._memory: dict[int, FrameSample] = {}
        self._paths: dict[int, Path] = {}

    def _path(self, index: int) -> Path:
        if index not in self._paths:
            key = record_key(self.records[index], self.frame, self.options)
            self._paths[index] = self.folder / key[:2] / f"{key}.safetensors"
        return self._paths[index]

    def cached(self, index: int) -> bool:
        """Whether sample ``index`` is already held (in memory, or as a complete file)."""
        return index in self._memory or (self.folder is not None and self._path(index).is_file())

    def put(self, index: int, sample: FrameSample) -> None:
        """Keep ``sample`` as record ``index``'s (written to disk in disk mode)."""
        if not self.keep:
            return
        if self.folder is None:
            self._memory[index] = sample
            return
        write_sample(self._path(index), sample)

    def __getitem__(self, index: int) -> FrameSample:
        if not self.keep:
            return self.decode(self.records[index])
        if self.folder is None:
            if index not in self._memory:
                self._memory[index] = self.decode(self.records[index])
            return self._memory[index]
        path = self._path(index)
        try:
            return read_sample(path)
        except (FileNotFoundError, KeyError, ValueError, json.JSONDecodeError):
            sample = self.decode(self.records[index])  # deleted (or foreign) file: decode again
            write_sample(path, sample)
            return sample

    def __len__(self) -> int:
        return len(self.records)
