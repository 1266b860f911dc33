"""Reading images and label maps from a data set's folder, safely and in one convention.

Conventions:

- Every array is in pixels of the original image *as displayed*: the EXIF orientation tag is
  applied to pixels and to sizes (``image_size`` and ``load_image`` always agree).
- ``load_image`` gives ``H x W x 3`` uint8 RGB. Grayscale is repeated to 3 channels; alpha is
  dropped (RGBA, LA, palette with transparency); 16-bit and float images (``I;16``, ``I``, ``F``)
  are scaled to uint8 per image with min-max scaling: ``(x - min) / (max - min) * 255``, rounded
  (a constant image becomes all zeros). The scaling is per image, so absolute intensities are not
  comparable across images; that is what SAM's own preprocessing expects anyway.
- ``load_label_map`` gives an ``H x W`` integer array of the file's pixel values (uint8, uint16 or
  int32, as stored); palette PNGs are read as palette indices, never as colours.
- File names from a data set go through :func:`safe_path`: a data set must not read files outside
  its own folder.
- An image larger than ``max_pixels`` (width x height, from the header, before anything is
  decoded; ``data.max_pixels``, default :data:`DEFAULT_MAX_PIXELS`, 0 = no limit) is a DataError,
  and so is running out of memory while decoding one.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from samlora.errors import DataError

from .frame import Frame

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp", ".gif")
"""File name endings (lower case) taken for images and masks when listing folders."""

_EXIF_ORIENTATION = 0x0112
_LOSSY_FORMATS = ("JPEG", "MPO")
_HIGH_DEPTH_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")

DEFAULT_MAX_PIXELS = 50_000_000
"""Default of ``data.max_pixels``: 50 megapixels (an 8K frame is 33)."""

ESCAPE_MESSAGE = "file_name escapes the data root; a data set must not read files outside its folder"
"""Message of the error Problem readers report when :func:`safe_path` returns ``None``."""


def safe_path(root: Path, file_name: str) -> Path | None:
    """``root / file_name`` resolved, or ``None`` when it would leave ``root``.

    ``None`` for an absolute ``file_name``, for ``..`` parts that climb out of ``root`` and for
    symbolic links whose target lies outside ``root``. Backslashes (Windows-made files) are read as
    folder separators. The path returned need not exist.
    """
    name = str(file_name).replace("\\", "/")
    if not name or Path(name).is_absolute() or name.startswith("/"):
        return None
    base = Path(root).resolve()
    try:
        candidate = (base / name).resolve()
    except (OSError, RuntimeError):  # symlink loops
        return None
    if candidate == base or not candidate.is_relative_to(base):
        return None
    return candidate


def check_pixels(path: Path, what: str, width: int, height: int, max_pixels: int) -> None:
    """DataError when ``width x height`` exceeds ``max_pixels`` (0: no limit)."""
    if max_pixels and width * height > max_pixels:
        raise DataError(
            f"{what} {path} is {width}x{height} = {width * height / 1e6:.1f} megapixels, more than "
            f"data.max_pixels = {max_pixels} ({max_pixels / 1e6:g} MP); decoding it would need "
            f"{width * height * 3 / 2**20:.0f} MiB. Fix: downscale the image, or raise data.max_pixels "
            "(samlora predict: --max-pixels; 0 accepts any size)"
        )


def _out_of_memory(path: Path, what: str, image: Image.Image | None) -> DataError:
    size = f" ({image.size[0]}x{image.size[1]} pixels)" if image is not None else ""
    return DataError(
        f"not enough memory to decode {what} {path}{size}. Fix: downscale it, or lower data.max_pixels to "
        "refuse such images up front"
    )


def _open(
    path: Path, what: str, frame: Frame | None = None, max_pixels: int = DEFAULT_MAX_PIXELS
) -> tuple[Image.Image, tuple[int, int]]:
    """Open and fully decode ``path`` with the EXIF orientation applied; DataError on failure.

    Returns the image and the file's full ``(H, W)`` as displayed. With ``frame``, a JPEG is decoded
    in draft mode at the smallest DCT scale (1/2, 1/4, 1/8) still at least as large as the frame
    needs, which is several times faster than a full decode. An image over ``max_pixels`` is refused
    from its header, before anything is decoded.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{what} {path} does not exist; check the file name and the data folder")
    image = None
    try:
        with warnings.catch_warnings():  # Pillow warns above 89 MP; max_pixels is the limit here
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(path)
        width, height = image.size
        check_pixels(path, what, width, height, max_pixels)  # the header only: nothing decoded yet
        orientation = _orientation(image)
        full = (width, height) if orientation in (5, 6, 7, 8) else (height, width)
        if frame is not None and image.format in _LOSSY_FORMATS:
            _draft(image, frame, full, rotated=orientation in (5, 6, 7, 8))
        image.load()
    except DataError:
        raise
    except MemoryError:
        raise _out_of_memory(path, what, image) from None
    except Image.DecompressionBombError as exc:  # Pillow's own hard limit (178 MP)
        raise DataError(
            f"{what} {path} is too large to decode safely: {exc}. Fix: downscale the image"
        ) from exc
    except Exception as exc:  # PIL raises many types for corrupt or truncated files
        raise DataError(
            f"cannot read {what} {path}: {exc}. Fix: replace the file (it is corrupt, truncated or not an "
            f"image), or remove it from the data set"
        ) from exc
    if orientation == 1:
        return image, full  # nothing to transpose: no copy of the pixels
    try:
        transposed = ImageOps.exif_transpose(image)
    except Exception as exc:  # a broken EXIF block should not make the pixels unusable
        log.warning("ignoring the unreadable EXIF orientation of %s: %s", path, exc)
        return image, (image.height, image.width)
    return (transposed, full) if transposed is not None else (image, (image.height, image.width))


def _orientation(image: Image.Image) -> int:
    try:
        return int(image.getexif().get(_EXIF_ORIENTATION, 1))
    except Exception:  # broken EXIF: exif_transpose decides (and warns)
        return 0


def _draft(image: Image.Image, frame: Frame, full: tuple[int, int], rotated: bool) -> None:
    """Ask the JPEG decoder for the frame's size (in the file's own, unrotated orientation)."""
    fit_h, fit_w = frame.fit(*full)
    if (fit_h, fit_w) != full:
        image.draft("RGB", (fit_h, fit_w) if rotated else (fit_w, fit_h))


def _minmax_uint8(values: np.ndarray) -> np.ndarray:
    """``H x W`` numbers -> ``H x W`` uint8 by per-image min-max scaling (constant -> zeros)."""
    values = values.astype(np.float64)
    finite = np.isfinite(values)
    if not finite.any():
        return np.zeros(values.shape, np.uint8)
    low, high = float(values[finite].min()), float(values[finite].max())
    values = np.where(finite, values, low)
    if high <= low:
        return np.zeros(values.shape, np.uint8)
    return np.round((values - low) / (high - low) * 255.0).astype(np.uint8)


def load_image(path: Path | str, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read an image as ``H x W x 3`` uint8 RGB, EXIF orientation applied.

    Grayscale -> RGB; RGBA/LA/palette -> RGB with alpha dropped; 16-bit or float images -> uint8 by
    per-image min-max scaling. Raises :class:`DataError` naming the file when it cannot be read, is
    larger than ``max_pixels`` (0: no limit) or does not fit in memory.
    """
    return read_image(path, max_pixels=max_pixels)[0]


def read_image(
    path: Path | str, frame: Frame | None = None, max_pixels: int = DEFAULT_MAX_PIXELS
) -> tuple[np.ndarray, tuple[int, int]]:
    """``(pixels, (H, W))``: the image as :func:`load_image` reads it, and its size as displayed.

    With ``frame`` the pixels are shrunk to ``frame.fit(H, W)`` (draft-mode JPEG decoding, then an
    antialiased bilinear resize); ``(H, W)`` is always the full size of the file.
    """
    image, full = _open(Path(path), "image", frame, max_pixels)
    try:
        return _rgb(image, frame, full), full
    except MemoryError:
        raise _out_of_memory(Path(path), "image", image) from None


def _rgb(image: Image.Image, frame: Frame | None, full: tuple[int, int]) -> np.ndarray:
    """``H x W x 3`` uint8 RGB of a decoded image (shrunk to ``frame.fit(*full)`` with a frame)."""
    if image.mode in _HIGH_DEPTH_MODES:
        gray = Image.fromarray(_minmax_uint8(np.asarray(image)))
        image = Image.merge("RGB", (gray, gray, gray))
    elif image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode != "RGB":
        image = image.convert("RGB")
    if frame is not None:
        fit_h, fit_w = frame.fit(*full)
        if (image.height, image.width) != (fit_h, fit_w):
            image = image.resize((fit_w, fit_h), Image.Resampling.BILINEAR)
    return np.ascontiguousarray(np.asarray(image, dtype=np.uint8))


def image_size(path: Path | str) -> tuple[int, int]:
    """``(height, width)`` of an image as displayed (EXIF orientation honoured), header only."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"image {path} does not exist; check the file name and the data folder")
    try:
        with Image.open(path) as image:
            width, height = image.size
            try:
                orientation = image.getexif().get(_EXIF_ORIENTATION, 1)
            except Exception:  # broken EXIF: the stored size is what load_image will give
                orientation = 1
    except Exception as exc:
        raise DataError(
            f"cannot read the header of image {path}: {exc}. Fix: replace the file (it is corrupt or not an "
            f"image), or remove it from the data set"
        ) from exc
    if orientation in (5, 6, 7, 8):  # rotated by 90 or 270 degrees
        width, height = height, width
    return int(height), int(width)


def exif_orientation(path: Path | str) -> int:
    """The EXIF orientation tag of an image (1 when absent or unreadable); for hints in reports."""
    try:
        with Image.open(path) as image:
            return int(image.getexif().get(_EXIF_ORIENTATION, 1))
    except Exception:
        return 1


def load_label_map(path: Path | str, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read a mask file as an ``H x W`` integer array of its pixel values, EXIF orientation applied.

    PNG/JPG/TIFF, 8 or 16 bit (uint8 / uint16; 32-bit integer TIFFs as int32). Palette PNGs are read
    as palette indices. RGB(A) masks whose channels are equal become one channel; RGB masks whose
    channels differ are read as the per-pixel maximum over channels when the file is lossy (JPEG
    chroma noise) or holds only black and one colour; any other colour mask is a DataError (class
    colours need a palette or a single-channel file). Float masks must hold whole numbers.
    """
    path = Path(path)
    image, _ = _open(path, "mask", max_pixels=max_pixels)
    lossy = image.format in _LOSSY_FORMATS if image.format else path.suffix.lower() in (".jpg", ".jpeg")
    mode = image.mode
    if mode == "P":
        return np.asarray(image, dtype=np.uint8).copy()
    if mode == "1":
        return np.asarray(image, dtype=np.uint8)
    if mode in ("L", "I;16", "I;16B", "I;16L", "I;16N", "I"):
        values = np.asarray(image)
        return (
            values.astype(values.dtype.newbyteorder("=")) if values.dtype.byteorder == ">" else values.copy()
        )
    if mode == "F":
        values = np.asarray(image, dtype=np.float64)
        if not np.all(np.isfinite(values)) or not np.all(values == np.round(values)):
            raise DataError(
                f"mask {path} holds fractional values; a mask's pixel values must be class or object ids. "
                f"Fix: save it as an 8- or 16-bit integer PNG"
            )
        return values.astype(np.int32)
    if mode in ("LA", "La", "PA"):
        return np.asarray(image.getchannel(0), dtype=np.uint8).copy()
    rgb = np.asarray(image.convert("RGB"), dtype=np.uint8)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    if np.array_equal(r, g) and np.array_equal(g, b):
        return r.copy()
    if lossy:
        return rgb.max(axis=2)
    colours = np.unique(rgb.reshape(-1, 3), axis=0)
    if len(colours) <= 2 and (colours == 0).all(axis=1).any():
        return rgb.max(axis=2)
    raise DataError(
        f"mask {path} is a colour image with {len(colours)} colours; samlora reads class or object ids from "
        f"pixel values. Fix: save masks as single-channel (grayscale) or palette PNGs whose values are the ids"
    )
