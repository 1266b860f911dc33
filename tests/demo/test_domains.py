"""The demo's synthetic domains: determinism, shapes, mask properties, measurable domain gap, folders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.ndimage import binary_dilation, gaussian_filter

from samlora.demo.domains import SITES, source_image, target_image
from samlora.demo.folders import INFO_FILE, derived_rng, mask_image, write_mask_folder, write_target_sites


def _ring_contrast(image: np.ndarray, mask: np.ndarray, width: int = 5) -> float:
    """Distance (RGB, 0-255) between the mean colour inside ``mask`` and in a ``width``-px ring around it."""
    ring = binary_dilation(mask, iterations=width) & ~mask
    img = image.astype(np.float64)
    return float(np.linalg.norm(img[mask].mean(axis=0) - img[ring].mean(axis=0)))


def _check_masks(image: np.ndarray, masks: np.ndarray, size: int) -> None:
    assert image.shape == (size, size, 3) and image.dtype == np.uint8
    assert masks.ndim == 3 and masks.shape[1:] == (size, size) and masks.dtype == bool
    assert len(masks) >= 1
    assert masks.reshape(len(masks), -1).any(axis=1).all(), "every mask has pixels"
    assert masks.sum(axis=0).max() <= 1, "instance masks are disjoint"


@pytest.mark.parametrize(
    "make", [source_image, *(lambda rng, s=s, size=128: target_image(rng, s, size) for s in "ABCD")]
)
def test_same_seed_same_arrays_different_seed_different(make) -> None:
    img1, m1 = make(np.random.default_rng(5), size=128)
    img2, m2 = make(np.random.default_rng(5), size=128)
    img3, _ = make(np.random.default_rng(6), size=128)
    assert np.array_equal(img1, img2) and np.array_equal(m1, m2)
    assert not np.array_equal(img1, img3)


def test_derived_rng_is_per_item_and_independent_of_order() -> None:
    a = derived_rng(3, 1, 0, 7).random(4)
    derived_rng(3, 1, 0, 6).random(100)  # drawing from another item changes nothing
    assert np.array_equal(a, derived_rng(3, 1, 0, 7).random(4))
    assert not np.array_equal(a, derived_rng(3, 1, 0, 8).random(4))
    assert not np.array_equal(a, derived_rng(4, 1, 0, 7).random(4))


def test_source_scenes_have_several_disjoint_visible_objects() -> None:
    counts = []
    for i in range(12):
        image, masks = source_image(derived_rng(11, 0, i), size=128)
        _check_masks(image, masks, 128)
        counts.append(len(masks))
        assert masks.sum(axis=(1, 2)).min() >= 16, "tiny visible remnants are dropped"
    assert max(counts) <= 12 and np.mean(counts) >= 4


def test_target_frames_have_one_or_two_polyps_inside_the_view() -> None:
    areas = []
    for i in range(12):
        site = "ABCD"[i % 4]
        image, masks = target_image(derived_rng(12, 1, i), site, size=128)
        _check_masks(image, masks, 128)
        assert len(masks) in (1, 2)
        areas += list(masks.mean(axis=(1, 2)))
        union = masks.any(axis=0)
        assert image[union].mean() > 40, "polyps lie inside the lit field of view, not on the black border"
    assert min(areas) >= 0.01 and max(areas) <= 0.3


def test_polyps_have_low_contrast_compared_with_source_objects() -> None:
    src, tgt = [], []
    for i in range(10):
        image, masks = source_image(derived_rng(13, 0, i))
        src += [_ring_contrast(image, m) for m in masks]
        image, masks = target_image(derived_rng(13, 1, i), "A")
        tgt += [_ring_contrast(image, m) for m in masks]
    assert np.median(tgt) < 0.4 * np.median(src)
    assert np.median(src) > 60  # clear edges in the source domain


def test_sites_differ_measurably() -> None:
    means, detail = {}, {}
    for site in SITES:
        imgs = [target_image(derived_rng(14, 1, i), site, size=192)[0].astype(np.float32) for i in range(6)]
        means[site] = np.mean([img.mean(axis=(0, 1)) for img in imgs], axis=0)
        res = []
        for img in imgs:
            grey = img.mean(axis=2)
            lit = (grey > 60) & (grey < 200)
            res.append(np.abs(grey - gaussian_filter(grey, 1.0))[lit].mean())
        detail[site] = float(np.mean(res))
    sites = list(SITES)
    for i, a in enumerate(sites):
        for b in sites[i + 1 :]:
            assert np.abs(means[a] - means[b]).max() > 8, (a, b, means[a], means[b])
    assert detail["C"] < 0.7 * detail["A"], detail  # half-resolution sensor: less fine detail
    assert detail["D"] > detail["C"], detail  # noisy sensor


def test_unknown_site_is_reported() -> None:
    with pytest.raises(ValueError, match="unknown site 'E'"):
        target_image(np.random.default_rng(0), "E")


def test_mask_image_modes() -> None:
    masks = np.zeros((2, 4, 4), bool)
    masks[0, 0, 0] = masks[1, 3, 3] = True
    assert set(np.unique(mask_image(masks, "binary"))) == {0, 255}
    inst = mask_image(masks, "instance")
    assert inst[0, 0] == 1 and inst[3, 3] == 2 and inst.sum() == 3


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_write_target_sites_layout_and_bytes(tmp_path: Path) -> None:
    out = write_target_sites(tmp_path / "a", seed=3, n_train=3, n_valid=2, n_test=2, size=64)
    assert set(out) == {"site_A", "site_B", "site_C", "site_D"}
    assert set(out["site_A"]) == {"train", "valid", "test"}
    assert all(set(out[s]) == {"test"} for s in ("site_B", "site_C", "site_D"))
    expected = {"train": 3, "valid": 2, "test": 2}
    for splits in out.values():
        for split, folder in splits.items():
            images = sorted((folder / "images").iterdir())
            masks = sorted((folder / "masks").iterdir())
            assert len(images) == len(masks) == expected[split]
            assert [p.stem for p in images] == [p.stem for p in masks]
            for img_path, mask_path in zip(images, masks):
                assert img_path.suffix == ".png" and mask_path.suffix == ".png"
                mask = np.asarray(Image.open(mask_path))
                assert mask.shape == (64, 64) and mask.dtype == np.uint8
                assert set(np.unique(mask)) == {0, 255}
                assert Image.open(img_path).convert("RGB").size == (64, 64)
    assert (tmp_path / "a" / INFO_FILE).is_file()
    # The PNG holds exactly what target_image gives for the derived seed of that item.
    image, masks = target_image(derived_rng(3, 1, 1, 2, 0), "B", 64)
    assert np.array_equal(np.asarray(Image.open(out["site_B"]["test"] / "images" / "B_test_0000.png")), image)
    # Same seed: same bytes; another seed: other bytes.
    write_target_sites(tmp_path / "b", seed=3, n_train=3, n_valid=2, n_test=2, size=64)
    assert _files(tmp_path / "a") == _files(tmp_path / "b")
    write_target_sites(tmp_path / "c", seed=4, n_train=3, n_valid=2, n_test=2, size=64)
    assert _files(tmp_path / "a") != _files(tmp_path / "c")


def test_write_mask_folder_parallel_jpg_instance_overwrite(tmp_path: Path) -> None:
    from functools import partial

    gen = partial(source_image, size=48)
    kw = dict(key=(0, 0), image_format="jpg", mask_mode="instance")
    stems = write_mask_folder(tmp_path / "serial", gen, 4, seed=1, **kw)
    write_mask_folder(tmp_path / "parallel", gen, 4, seed=1, workers=2, **kw)
    assert stems == ["0000", "0001", "0002", "0003"]
    assert _files(tmp_path / "serial") == _files(tmp_path / "parallel")
    assert (tmp_path / "serial" / "images" / "0000.jpg").is_file()
    ids = np.asarray(Image.open(tmp_path / "serial" / "masks" / "0000.png"))
    _, masks = gen(derived_rng(1, 0, 0, 0))
    assert ids.max() == len(masks)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        write_mask_folder(tmp_path / "serial", gen, 2, seed=1)
    write_mask_folder(tmp_path / "serial", gen, 2, seed=1, overwrite=True)
    assert len(list((tmp_path / "serial" / "images").iterdir())) == 2


def test_project_mask_folder_reader_reads_the_sites(tmp_path: Path) -> None:
    masks_mod = pytest.importorskip("samlora.data.masks")
    from samlora.data.decode import load_sample

    write_target_sites(tmp_path, seed=0, n_train=4, n_valid=1, n_test=2, size=64)
    for site, split in [("site_A", "train"), ("site_A", "valid"), ("site_A", "test"), ("site_D", "test")]:
        ds = masks_mod.read_mask_folder(tmp_path / site, split)
        assert not ds.problems and len(ds) == {"train": 4, "valid": 1, "test": 2}[split]
    for rec in masks_mod.read_mask_folder(tmp_path / "site_A", "train").images:
        index = int(Path(rec.file_name).stem.rsplit("_", 1)[1])
        _, masks = target_image(derived_rng(0, 1, 0, 0, index), "A", 64)
        sample = load_sample(rec)  # each polyp is one connected component of the binary mask
        assert len(sample.masks) == len(masks) and np.array_equal(sample.masks.any(axis=0), masks.any(axis=0))
