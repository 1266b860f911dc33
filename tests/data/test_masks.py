"""Mask folders: pairing, mask kinds, components vs whole, splits (folders, lists, seeded)."""

from __future__ import annotations

import numpy as np
import pytest

from samlora.data.decode import load_sample
from samlora.data.masks import read_mask_folder
from samlora.errors import DataError


@pytest.mark.parametrize("value", [1, 255])
def test_binary_components_and_whole(tmp_path, datasets, value):
    root = datasets.write_mask_folder(tmp_path, {"a": datasets.two_blobs(value)})
    ds = read_mask_folder(root)
    assert ds.problems == [] and ds.format == "masks" and ds.split == "all"
    assert ds.category_names == {1: "object"}
    record = ds.images[0]
    assert record.objects == [] and record.mask_kind == "binary" and record.mask_path.name == "a.png"
    sample = load_sample(record)
    assert sample.masks.shape == (2, 20, 30)
    assert sorted(int(m.sum()) for m in sample.masks) == [16, 36]
    assert list(sample.category_ids) == [1, 1] and not sample.iscrowd.any()
    whole = load_sample(record, binary_objects="whole")
    assert whole.masks.shape == (1, 20, 30) and int(whole.masks.sum()) == 52
    np.testing.assert_array_equal(whole.masks[0], datasets.two_blobs(value) > 0)


def test_diagonal_pixels_are_one_component(tmp_path, datasets):
    mask = np.zeros((20, 30), np.uint8)
    mask[5:8, 5:8] = 255
    mask[8:11, 8:11] = 255  # touches the first square at a corner only
    ds = read_mask_folder(datasets.write_mask_folder(tmp_path, {"a": mask}))
    assert load_sample(ds.images[0]).masks.shape[0] == 1


def test_min_object_area_drops_small_components(tmp_path, datasets):
    ds = read_mask_folder(
        datasets.write_mask_folder(tmp_path, {"a": datasets.two_blobs()}), min_object_area=20
    )
    assert ds.decode_options == {"binary_objects": "components", "min_object_area": 20}
    sample = load_sample(ds.images[0], **ds.decode_options)
    assert sample.masks.shape[0] == 1 and int(sample.masks.sum()) == 36


def test_noisy_jpg_masks_are_binary(tmp_path, datasets):
    truth = datasets.two_blobs()
    root = datasets.write_mask_folder(tmp_path, {"a": truth}, image_ext=".jpg", mask_ext=".jpg")
    ds = read_mask_folder(root)
    assert ds.images[0].mask_kind == "binary" and ds.problems == []
    sample = load_sample(ds.images[0])
    assert sample.masks.shape[0] == 2
    union = sample.masks.any(axis=0)
    iou = (union & (truth > 0)).sum() / (union | (truth > 0)).sum()
    assert iou > 0.9


def test_zero_one_jpg_masks_keep_their_objects(tmp_path, datasets):
    """0/1 masks saved as JPEG get values 0/1/2 near edges; the Otsu split keeps value 1 (a split
    at half the maximum, 1, would keep only the 2s: IoU 0.13). JPEG rounding at amplitude 1 limits
    the IoU to about 0.87."""
    truth = np.zeros((64, 64), np.uint8)
    yy, xx = np.mgrid[:64, :64]
    truth[(yy - 30) ** 2 + (xx - 34) ** 2 <= 15**2] = 1
    root = tmp_path / "j01"
    datasets.save(root / "images" / "a.png", datasets.rgb(64, 64))
    datasets.save(root / "masks" / "a.jpg", truth, quality=75)
    ds = read_mask_folder(root)
    sample = load_sample(ds.images[0])
    union = sample.masks.any(axis=0)
    assert (union & (truth > 0)).sum() / (union | (truth > 0)).sum() > 0.8


def test_multiclass_with_class_names(tmp_path, datasets):
    mask = np.zeros((20, 30), np.uint8)
    mask[2:6, 2:6] = 1
    mask[10:15, 10:20] = 2
    mask[16:18, 25:28] = 1
    root = datasets.write_mask_folder(tmp_path, {"a": mask, "b": (mask == 2).astype(np.uint8) * 2})
    ds = read_mask_folder(root, class_names={0: "background", 1: "polyp", 2: "tool"})
    assert ds.problems == [] and {r.mask_kind for r in ds.images} == {"multiclass"}
    assert ds.category_names == {1: "polyp", 2: "tool"}
    sample = load_sample(ds.images[0])  # components: each blob of a class is its own object
    assert list(sample.category_ids) == [1, 1, 2] and sample.ann_ids == [1, 2, 3]
    np.testing.assert_array_equal(sample.masks[0] | sample.masks[1], mask == 1)
    assert sorted(int(m.sum()) for m in sample.masks[:2]) == [6, 16]
    np.testing.assert_array_equal(sample.masks[2], mask == 2)
    whole = load_sample(ds.images[0], binary_objects="whole")
    assert list(whole.category_ids) == [1, 2] and whole.ann_ids == [1, 2]
    np.testing.assert_array_equal(whole.masks[0], mask == 1)
    np.testing.assert_array_equal(whole.masks[1], mask == 2)


def test_auto_with_many_values_and_no_class_names_asks_for_mask_type(tmp_path, datasets):
    mask = np.zeros((20, 30), np.uint8)
    mask[1:4, 1:4], mask[6:9, 6:9], mask[12:15, 12:15] = 1, 2, 3
    ds = read_mask_folder(datasets.write_mask_folder(tmp_path, {"a": mask}))
    error = ds.errors[0]
    assert len(ds.errors) == 1 and "data.mask_type" in error.fix and "4 distinct values" in error.message
    explicit = read_mask_folder(tmp_path, mask_kind="multiclass")
    assert "class names" in explicit.errors[0].message


def test_instance_masks(tmp_path, datasets):
    mask = np.zeros((20, 30), np.uint16)
    mask[1:4, 1:4], mask[6:9, 6:9], mask[12:15, 12:15] = 1, 300, 7
    ds = read_mask_folder(datasets.write_mask_folder(tmp_path, {"a": mask}), mask_kind="instance")
    assert ds.problems == [] and ds.category_names == {1: "object"}
    sample = load_sample(ds.images[0])
    assert sample.ann_ids == [1, 7, 300] and list(sample.category_ids) == [1, 1, 1]
    np.testing.assert_array_equal(sample.masks[2], mask == 300)
    named = read_mask_folder(tmp_path, mask_kind="instance", class_names={1: "cell"})
    assert named.category_names == {1: "cell"}


def test_mask_name_suffixes_pair(tmp_path, datasets):
    for suffix in ("_mask", "_seg", "_gt", "_label"):
        root = datasets.write_mask_folder(tmp_path / suffix, {"a": datasets.two_blobs()}, mask_suffix=suffix)
        ds = read_mask_folder(root)
        assert ds.problems == [] and ds.images[0].mask_path.name == f"a{suffix}.png"


def test_unpaired_images_and_masks_are_reported(tmp_path, datasets):
    root = datasets.write_mask_folder(
        tmp_path, {"a": datasets.two_blobs()}, images_only=("lonely",), masks_only=("orphan",)
    )
    ds = read_mask_folder(root)
    assert [r.image_id for r in ds.images] == ["a"]
    assert [(p.severity, p.file.split("/")[-1]) for p in ds.problems] == [
        ("warning", "lonely.png"),
        ("warning", "orphan.png"),
    ]
    assert "no mask" in ds.problems[0].message and "no image" in ds.problems[1].message


def test_mask_size_differing_from_image_raises_naming_both(tmp_path, datasets):
    root = datasets.write_mask_folder(tmp_path, {"a": datasets.two_blobs()})
    datasets.save(root / "masks" / "a.png", np.zeros((10, 10), np.uint8))
    ds = read_mask_folder(root)
    with pytest.raises(DataError, match=r"a\.png.*10x10.*20x30"):
        load_sample(ds.images[0])


def _many(datasets, root, n=20):
    return datasets.write_mask_folder(root, {f"img{i:02d}": datasets.two_blobs() for i in range(n)})


def test_seeded_split_is_deterministic_and_disjoint(tmp_path, datasets):
    root = _many(datasets, tmp_path)
    split = {
        name: [r.image_id for r in read_mask_folder(root, name, seed=3).images] for name in ("train", "val")
    }
    assert len(split["val"]) == 2 and len(split["train"]) == 18
    assert not set(split["train"]) & set(split["val"])
    assert [r.image_id for r in read_mask_folder(root, "valid", seed=3).images] == split["val"]
    assert [r.image_id for r in read_mask_folder(root, "validation", seed=3).images] == split["val"]
    others = {tuple(r.image_id for r in read_mask_folder(root, "val", seed=s).images) for s in range(4, 9)}
    assert len(others | {tuple(split["val"])}) > 1
    three = {
        n: read_mask_folder(root, n, val_fraction=0.2, test_fraction=0.1, seed=0)
        for n in ("train", "val", "test")
    }
    assert [len(ds) for ds in three.values()] == [14, 4, 2]
    assert len({r.image_id for ds in three.values() for r in ds.images}) == 20
    with pytest.raises(DataError, match="no 'test' split"):
        read_mask_folder(root, "test")


def test_split_lists(tmp_path, datasets):
    root = _many(datasets, tmp_path, n=6)
    (root / "val.txt").write_text("img00.png\nimages/img01.png\n\n# comment\nimg02\nnot_there\n")
    (root / "test.txt").write_text("img03\nimg02\n")
    val = read_mask_folder(root, "valid")
    assert [r.image_id for r in val.images] == ["img00", "img01", "img02"]
    missing = [p for p in val.problems if p.severity == "error"]
    assert len(missing) == 1 and missing[0].record == "line 6" and missing[0].file.endswith("val.txt")
    assert "not_there" in missing[0].message
    overlap = [p for p in val.problems if p.severity == "warning"]
    assert len(overlap) == 1 and "img02" in overlap[0].message
    train = read_mask_folder(root, "train")  # no train.txt: every image in no other list
    assert [r.image_id for r in train.images] == ["img04", "img05"]
    (root / "train.txt").write_text("img05\n")
    listed = read_mask_folder(root, "train")
    assert [r.image_id for r in listed.images] == ["img05"]
    unlisted = [p for p in listed.problems if "no split list" in p.message]
    assert len(unlisted) == 1 and unlisted[0].severity == "warning" and "1 image(s)" in unlisted[0].message
    assert "img04" in unlisted[0].message and unlisted[0].file.endswith("train.txt")


def test_split_subfolders(tmp_path, datasets):
    datasets.write_mask_folder(tmp_path / "train", {"a": datasets.two_blobs(), "b": datasets.two_blobs()})
    datasets.write_mask_folder(tmp_path / "val", {"c": datasets.two_blobs()})
    train = read_mask_folder(tmp_path, "train")
    assert [r.file_name for r in train.images] == ["train/images/a.png", "train/images/b.png"]
    assert [r.image_id for r in read_mask_folder(tmp_path, "valid").images] == ["c"]
    with pytest.raises(DataError, match="sub-folders"):
        read_mask_folder(tmp_path)


def test_not_a_mask_folder_and_bad_options(tmp_path, datasets):
    (tmp_path / "stuff").mkdir()
    with pytest.raises(DataError, match="no images/ and masks/"):
        read_mask_folder(tmp_path)
    root = datasets.write_mask_folder(tmp_path / "m", {"a": datasets.two_blobs()})
    with pytest.raises(DataError, match="mask_type"):
        read_mask_folder(root, mask_kind="semantic")
    with pytest.raises(DataError, match="val_fraction"):
        read_mask_folder(root, val_fraction=0.7, test_fraction=0.4)


def test_unknown_mask_kind_cannot_be_decoded(tmp_path, datasets):
    mask = np.zeros((20, 30), np.uint8)
    mask[1:4, 1:4], mask[6:9, 6:9], mask[12:15, 12:15] = 1, 2, 3
    ds = read_mask_folder(datasets.write_mask_folder(tmp_path, {"a": mask}))
    assert ds.images[0].mask_kind is None
    with pytest.raises(DataError, match=r"a\.png.*data\.mask_type"):
        load_sample(ds.images[0])
