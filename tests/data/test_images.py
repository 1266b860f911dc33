"""Image and label-map reading: modes, EXIF orientation, corrupt files, path safety."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from samlora.data.images import image_size, load_image, load_label_map, safe_path
from samlora.errors import DataError


def test_safe_path_keeps_paths_inside_the_root(tmp_path):
    assert safe_path(tmp_path, "a.png") == (tmp_path / "a.png").resolve()
    assert safe_path(tmp_path, "sub/dir/a.png") == (tmp_path / "sub" / "dir" / "a.png").resolve()
    assert safe_path(tmp_path, "sub/../a.png") == (tmp_path / "a.png").resolve()


@pytest.mark.parametrize(
    "name", ["../secret.png", "sub/../../secret.png", "/etc/passwd", "..\\secret.png", ""]
)
def test_safe_path_refuses_escapes(tmp_path, name):
    root = tmp_path / "data"
    root.mkdir()
    assert safe_path(root, name) is None


def test_safe_path_refuses_symlinks_leading_outside(tmp_path, datasets):
    root = tmp_path / "data"
    root.mkdir()
    secret = datasets.save(tmp_path / "secret.png", datasets.rgb())
    os.symlink(secret, root / "link.png")
    inside = datasets.save(root / "real.png", datasets.rgb())
    os.symlink(inside, root / "inner_link.png")
    assert safe_path(root, "link.png") is None
    assert safe_path(root, "inner_link.png") == inside.resolve()


def test_rgb_image(tmp_path, datasets):
    pixels = datasets.rgb()
    image = load_image(datasets.save(tmp_path / "a.png", pixels))
    assert image.dtype == np.uint8 and image.shape == (20, 30, 3)
    np.testing.assert_array_equal(image, pixels)


def test_grayscale_becomes_rgb(tmp_path, datasets):
    gray = datasets.rgb()[..., 0]
    image = load_image(datasets.save(tmp_path / "g.png", gray))
    assert image.shape == (20, 30, 3)
    for c in range(3):
        np.testing.assert_array_equal(image[..., c], gray)


def test_rgba_drops_alpha(tmp_path, datasets):
    rgba = np.concatenate([datasets.rgb(), np.full((20, 30, 1), 7, np.uint8)], axis=2)
    image = load_image(datasets.save(tmp_path / "a.png", rgba))
    assert image.shape == (20, 30, 3)
    np.testing.assert_array_equal(image, rgba[..., :3])


def test_palette_image_becomes_rgb(tmp_path, datasets):
    source = Image.fromarray(datasets.rgb()).convert("P", palette=Image.Palette.ADAPTIVE, colors=8)
    source.save(tmp_path / "p.png")
    image = load_image(tmp_path / "p.png")
    np.testing.assert_array_equal(image, np.asarray(source.convert("RGB")))


def test_16bit_image_is_min_max_scaled(tmp_path, datasets):
    values = np.linspace(1000, 3000, 20 * 30).reshape(20, 30).astype(np.uint16)
    image = load_image(datasets.save(tmp_path / "deep.png", values))
    assert image.dtype == np.uint8 and image.shape == (20, 30, 3)
    assert image.min() == 0 and image.max() == 255
    assert image[0, 0, 0] == 0 and image[-1, -1, 0] == 255
    assert np.all(np.diff(image[..., 0].ravel().astype(int)) >= 0)  # order kept


def test_float_image_is_min_max_scaled(tmp_path):
    values = np.linspace(-1.0, 1.0, 20 * 30, dtype=np.float32).reshape(20, 30)
    Image.fromarray(values, mode="F").save(tmp_path / "f.tif")
    image = load_image(tmp_path / "f.tif")
    assert image.shape == (20, 30, 3) and image.min() == 0 and image.max() == 255


def _exif_rotated_jpeg(path, orientation=6):
    pixels = np.zeros((20, 30, 3), np.uint8)
    pixels[:, :15] = 255  # left half white
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[0x0112] = orientation
    image.save(path, exif=exif, quality=95)
    return path


def test_exif_orientation_is_applied_to_size_and_pixels(tmp_path):
    path = _exif_rotated_jpeg(tmp_path / "rot.jpg")  # 6: displayed rotated 90 degrees clockwise
    assert image_size(path) == (30, 20)
    image = load_image(path)
    assert image.shape == (30, 20, 3)
    assert image[:12].mean() > 240  # the white left half is now on top
    assert image[18:].mean() < 15


def test_image_size_reads_the_header(tmp_path, datasets):
    assert image_size(datasets.save(tmp_path / "a.png", datasets.rgb(11, 17))) == (11, 17)


def test_corrupt_and_missing_images_raise_data_error_naming_the_file(tmp_path, datasets):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not an image at all")
    with pytest.raises(DataError, match="broken.jpg"):
        load_image(bad)
    with pytest.raises(DataError, match="broken.jpg"):
        image_size(bad)
    truncated = datasets.save(tmp_path / "cut.png", datasets.rgb())
    truncated.write_bytes(truncated.read_bytes()[:60])
    with pytest.raises(DataError, match="cut.png"):
        load_image(truncated)
    with pytest.raises(DataError, match="missing.png"):
        load_image(tmp_path / "missing.png")


def test_max_pixels_refuses_from_the_header_and_zero_accepts_any_size(tmp_path, datasets, monkeypatch):
    from PIL import ImageFile

    path = datasets.save(tmp_path / "a.png", datasets.rgb(30, 40))
    decoded = []
    real_load = ImageFile.ImageFile.load
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: decoded.append(1) or real_load(self))
    with pytest.raises(DataError, match=r"a.png is 40x30 = 0.0 megapixels, more than data.max_pixels = 1000"):
        load_image(path, max_pixels=1000)
    with pytest.raises(DataError, match="data.max_pixels = 1199"):
        load_label_map(path, max_pixels=1199)
    assert not decoded  # refused before any pixel was decoded
    assert load_image(path, max_pixels=1200).shape == (30, 40, 3)
    assert load_image(path, max_pixels=0).shape == (30, 40, 3)


def test_label_map_palette_png_gives_indices(tmp_path):
    indices = np.zeros((20, 30), np.uint8)
    indices[5:10, 5:10] = 2
    indices[12:15, 20:25] = 5
    image = Image.fromarray(indices, mode="P")
    image.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255, 9, 9, 9, 200, 100, 50] + [0] * 750)
    image.save(tmp_path / "p.png")
    label = load_label_map(tmp_path / "p.png")
    np.testing.assert_array_equal(label, indices)


def test_label_map_16bit_keeps_values(tmp_path, datasets):
    values = np.zeros((20, 30), np.uint16)
    values[2:5, 2:5] = 1000
    values[10:12, 10:12] = 65535
    label = load_label_map(datasets.save(tmp_path / "m.png", values))
    assert label.dtype == np.uint16
    np.testing.assert_array_equal(label, values)


def test_label_map_gray_rgb_collapses_and_tiff_reads(tmp_path, datasets):
    mask = datasets.two_blobs(3)
    label = load_label_map(datasets.save(tmp_path / "rgb.png", np.stack([mask] * 3, axis=2)))
    assert label.shape == (20, 30)
    np.testing.assert_array_equal(label, mask)
    np.testing.assert_array_equal(load_label_map(datasets.save(tmp_path / "m.tif", mask)), mask)


def test_label_map_colour_masks(tmp_path, datasets):
    red = np.zeros((20, 30, 3), np.uint8)
    red[2:8, 2:8, 0] = 255  # black + one colour: read as its brightest channel
    assert load_label_map(datasets.save(tmp_path / "red.png", red)).max() == 255
    red[10:12, 10:12] = (0, 200, 0)  # a second colour: ambiguous
    with pytest.raises(DataError, match="colour"):
        load_label_map(datasets.save(tmp_path / "two.png", red))


def test_label_map_applies_exif_orientation(tmp_path):
    path = _exif_rotated_jpeg(tmp_path / "mask.jpg")
    label = load_label_map(path)
    assert label.shape == (30, 20)
    assert label[:12].mean() > 240
