"""Images that arrive in requests: size limits, base64, decoding with samlora's image conventions.

An upload is refused before it is decoded when it is larger than the upload limit (413) or when
its header announces more than ``max_pixels`` pixels (413); bytes no image reader understands get
415. Decoding goes through :func:`samlora.data.images.load_image` (EXIF orientation, grayscale,
alpha, 16-bit), so the server sees an image exactly as ``samlora predict`` does.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import tempfile
import warnings

import numpy as np
from PIL import Image, UnidentifiedImageError

from samlora.data.images import load_image
from samlora.errors import DataError

from .schema import RequestError


def content_hash(data: bytes) -> str:
    """SHA-256 of an image file's bytes: the key of its cached embeddings."""
    return hashlib.sha256(data).hexdigest()


def from_base64(text: str, max_bytes: int) -> bytes:
    """The bytes of a base64 string or ``data:image/...;base64,`` URL, refused beyond ``max_bytes``."""
    if text.startswith("data:"):
        text = text.partition(",")[2]
    if len(text) * 3 // 4 > max_bytes + 3:
        raise RequestError(f"the image is larger than the server's upload limit ({max_bytes} bytes)", 413)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise RequestError(
            "'image' is not base64: send the image file's bytes in base64 (or a data: URL), "
            "or upload the file as multipart form field 'image'",
            400,
        ) from None


def decode_image(data: bytes, max_pixels: int) -> np.ndarray:
    """``H x W x 3`` uint8 RGB of an image file's bytes.

    Raises:
        RequestError: 415 for bytes that are no image, 413 beyond ``max_pixels``.
    """
    if not data:
        raise RequestError("the image is empty (0 bytes)", 400)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the limit is ours: max_pixels
            with Image.open(io.BytesIO(data)) as header:
                width, height = header.size
    except Image.DecompressionBombError as err:
        raise RequestError(f"the image is too large to decode ({err}); send a smaller image", 413) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise RequestError(
            "the upload is not an image samlora can read (PNG, JPEG, TIFF, BMP, WebP, GIF)", 415
        ) from None
    if width * height > max_pixels:
        raise RequestError(
            f"the image has {width} x {height} = {width * height} pixels, more than this server's "
            f"--max-pixels {max_pixels}; send a smaller image",
            413,
        )
    with tempfile.NamedTemporaryFile(prefix="samlora-serve-", suffix=".img") as tmp:
        tmp.write(data)
        tmp.flush()
        try:
            return load_image(tmp.name)
        except DataError:
            raise RequestError(
                "the upload is not an image samlora can read (it is corrupt or truncated)", 415
            ) from None
