"""The decoded cache: frame decoding (draft JPEG, label layers), on-disk files, keys, deletion."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from samlora.data import decode
from samlora.data.cache import DecodedCache, default_cache_dir, read_sample, record_key
from samlora.data.check import check_dataset
from samlora.data.frame import Frame, pack_masks, shrink_labels
from samlora.data.layout import open_split
from samlora.data.records import ImageRecord, ObjectAnn

from .conftest import box_polygon, save


def jpeg_record(tmp_path: Path, size: tuple[int, int] = (400, 600)) -> ImageRecord:
    """A smooth 400 x 600 JPEG (a photo-like picture) with two overlapping COCO boxes."""
    yy, xx = np.mgrid[: size[0], : size[1]] / 40.0
    image = np.stack([np.sin(xx) * 100 + 120, np.cos(yy) * 100 + 120, (xx + yy) * 10 % 255], -1).astype(
        np.uint8
    )
    path = save(tmp_path / "photo.jpg", image, quality=95)
    objects = [
        ObjectAnn(1, 1, segmentation=[box_polygon(100, 50, 300, 250)]),
        ObjectAnn(2, 2, segmentation=[box_polygon(200, 100, 500, 350)]),  # overlaps the first
    ]
    return ImageRecord(
        image_id=7, file_name="photo.jpg", path=path, height=size[0], width=size[1], objects=objects
    )


def test_frame_decoding_shrinks_jpegs_and_keeps_overlapping_objects(tmp_path: Path) -> None:
    record = jpeg_record(tmp_path)
    full = decode.load_sample(record)
    frame = Frame(150, "longest_side")
    small = decode.load_sample(record, frame=frame)
    assert small.size == frame.fit(400, 600) == (100, 150) and small.original_size == (400, 600)
    assert small.labels.shape[0] == 2 and small.layers.tolist() == [0, 1]  # overlap: a second layer
    expected = shrink_labels(full.masks.astype(np.int16), (100, 150)).astype(bool)
    np.testing.assert_array_equal(small.masks(), expected)
    np.testing.assert_array_equal(small.areas, expected.reshape(2, -1).sum(1))
    # the draft decode equals a full decode resized the same way, within JPEG rounding
    resized = np.asarray(
        Image.fromarray(full.image).resize((150, 100), Image.Resampling.BILINEAR), dtype=float
    )
    assert np.abs(small.image.astype(float) - resized).mean() < 4.0
    square = decode.load_sample(record, frame=Frame(256, "square"))
    assert square.size == (256, 256)  # square frames cap each side


def test_pack_masks_uses_as_few_layers_as_overlaps_need() -> None:
    a = np.zeros((4, 4), bool)
    a[:2] = True
    b = np.zeros((4, 4), bool)
    b[2:] = True
    c = np.ones((4, 4), bool)
    labels, layers = pack_masks([a, b, c], 4, 4)
    assert layers.tolist() == [0, 0, 1] and labels.shape == (2, 4, 4)
    assert (labels[0][a] == 1).all() and (labels[0][b] == 2).all() and (labels[1] == 3).all()


def test_disk_cache_is_memory_mapped_keyed_and_safe_to_delete(tmp_path: Path, monkeypatch) -> None:
    record = jpeg_record(tmp_path)
    frame = Frame(150)
    options = {"binary_objects": "components", "min_object_area": 0}
    calls = []

    def decoding(r: ImageRecord):
        calls.append(r.file_name)
        return decode.load_sample(r, frame=frame, **options)

    folder = tmp_path / "cache"
    cache = DecodedCache([record], decoding, frame, options, folder=folder)
    first = cache[0]
    files = list(folder.rglob("*.safetensors"))
    assert len(files) == 1 and calls == ["photo.jpg"] and not list(folder.rglob(".*tmp*"))
    again = DecodedCache([record], decoding, frame, options, folder=folder)[0]  # another process
    assert calls == ["photo.jpg"] and isinstance(again.image, np.memmap)
    np.testing.assert_array_equal(again.image, first.image)
    np.testing.assert_array_equal(again.masks(), first.masks())
    assert (again.image_id, again.ann_ids, again.original_size) == (7, [1, 2], (400, 600))
    # the key follows the file's content and every setting
    key = record_key(record, frame, options)
    assert files[0].stem == key
    assert record_key(record, Frame(151), options) != key
    assert record_key(record, frame, {**options, "min_object_area": 5}) != key
    save(record.path, np.zeros((400, 600, 3), np.uint8))
    assert record_key(record, frame, options) != key
    # deleting the folder while in use: the next read decodes and writes again
    for path in folder.rglob("*"):
        if path.is_file():
            path.unlink()
    fresh = DecodedCache([record], decoding, frame, options, folder=folder)
    assert fresh[0].image.max() == 0 and len(calls) == 2 and len(list(folder.rglob("*.safetensors"))) == 1
    monkeypatch.setenv("SAMLORA_CACHE", str(tmp_path / "env"))
    assert default_cache_dir() == tmp_path / "env" / "decoded"


def test_an_interrupted_write_leaves_no_readable_file(tmp_path: Path, monkeypatch) -> None:
    import samlora.data.cache as cache_module

    record = jpeg_record(tmp_path)
    frame, options = Frame(150), {}
    sample = decode.load_sample(record, frame=frame)

    def dying(tensors, path, metadata=None):
        Path(path).write_bytes(b"half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr(cache_module, "save_file", dying)
    cache = DecodedCache([record], lambda r: sample, frame, options, folder=tmp_path / "c")
    with pytest.raises(KeyboardInterrupt):
        cache.put(0, sample)
    assert not list((tmp_path / "c").rglob("*.safetensors")) and not list((tmp_path / "c").rglob(".*"))
    monkeypatch.undo()
    cache.put(0, sample)
    (path,) = (tmp_path / "c").rglob("*.safetensors")
    np.testing.assert_array_equal(read_sample(path).labels, sample.labels)
    assert oct(os.stat(path).st_mode)[-3:] != "000"


def test_the_check_decodes_once_and_hands_training_its_samples(tmp_path: Path, monkeypatch) -> None:
    from samlora.data.synthetic import write_mask_dataset

    root = write_mask_dataset(tmp_path / "d", n_train=3, n_valid=0, seed=0)
    split = open_split(root, "train")
    import samlora.data.images as images

    opened: list[str] = []
    real = images._open

    def counting(path, what, *args, **kwargs):
        opened.append(str(path))
        return real(path, what, *args, **kwargs)

    monkeypatch.setattr(images, "_open", counting)
    report = check_dataset(split, deep=True, workers=1, frame=Frame(32), keep=True)
    assert report.ok and len(report.samples) == 3
    assert len(opened) == len(set(opened)) == 6  # every image and every mask read exactly once
    for record, sample in zip(split.images, report.samples):
        full = decode.load_sample(record)
        assert sample.original_size == full.size and max(sample.size) <= 32
        assert len(sample.layers) == len(full.masks)


def test_boxes_and_pixels_of_each_object_as_nonzero_of_its_mask_gives_them() -> None:
    """Boxes from one pass per label layer; pixels read inside the box, in row-major order;
    overlapping objects (several layers) and an object without pixels included."""
    from samlora.data.frame import FrameSample, object_boxes

    rng = np.random.default_rng(4)
    masks = [rng.random((30, 41)) < p for p in (0.05, 0.2, 0.5, 0.3)] + [np.zeros((30, 41), bool)]
    labels, layers = pack_masks(masks, 30, 41)
    assert len(labels) > 1  # the random masks overlap: several layers
    k = len(masks)
    sample = FrameSample(
        image=np.zeros((30, 41, 3), np.uint8), labels=labels, layers=layers,
        areas=np.array([m.sum() for m in masks]), boxes=object_boxes(labels, layers), category_ids=np.ones(k, np.int64),
        iscrowd=np.zeros(k, bool), ann_ids=list(range(k)), image_id=1, file_name="x.png", original_size=(30, 41),
    )  # fmt: skip
    got = sample.pixels_of([3, 0, 4, 1, 2, 0])
    assert sorted(got) == [0, 1, 2, 3, 4]
    for i, mask in enumerate(masks):
        rows, cols = np.nonzero(mask)
        assert np.array_equal(got[i][0], rows) and np.array_equal(got[i][1], cols), i
        box = [rows.min(), cols.min(), rows.max() + 1, cols.max() + 1] if len(rows) else [0, 0, 0, 0]
        assert sample.boxes[i].tolist() == box, i
    assert sample.pixels_of([]) == {}
