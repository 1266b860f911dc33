"""Write the synthetic domains as ordinary image/mask folders (what users' data looks like).

Layout of one split folder, read by samlora's mask-folder reader::

    <split>/images/<stem>.png|jpg     H x W x 3 RGB
    <split>/masks/<stem>.png          H x W uint8: 0/255 (binary) or 0..K (instance ids)

Every image is generated from its own seed, derived from ``(seed, *key, index)`` with
:class:`numpy.random.SeedSequence`, so a folder is byte-identical for a seed whatever the
order or the number of worker processes.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image

from .domains import SITES, target_image

logger = logging.getLogger(__name__)

GeneratorFn = Callable[[np.random.Generator], tuple[np.ndarray, np.ndarray]]
"""``rng -> (image H x W x 3 uint8, masks K x H x W bool)``, e.g. ``partial(target_image, site="B")``."""

SPLITS = ("train", "valid", "test")
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
_SITE_SPLITS = {"A": SPLITS, "B": ("test",), "C": ("test",), "D": ("test",)}
_TARGET_DOMAIN = 1  # first spawn-key element; 0 is left to the source domain
INFO_FILE = "synthetic_sites.json"


def derived_rng(seed: int, *key: int) -> np.random.Generator:
    """The generator of one item: ``SeedSequence(seed, spawn_key=key)``, independent of any other key."""
    return np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=tuple(int(k) for k in key)))


def mask_image(masks: np.ndarray, mode: Literal["binary", "instance"]) -> np.ndarray:
    """``K x H x W`` bool -> ``H x W`` uint8: union as 0/255 (``binary``) or ids 1..K (``instance``)."""
    if mode == "binary":
        return np.where(masks.any(axis=0), 255, 0).astype(np.uint8)
    if mode == "instance":
        if len(masks) > 255:
            raise ValueError(f"{len(masks)} objects do not fit an 8-bit instance mask (at most 255)")
        ids = np.zeros(masks.shape[1:], np.uint8)
        for k, m in enumerate(masks):
            ids[m] = k + 1
        return ids
    raise ValueError(f"unknown mask mode {mode!r}; expected 'binary' or 'instance'")


def _write_one(
    job: tuple,
    generator_fn: GeneratorFn,
    out_dir: Path,
    seed: int,
    key: tuple[int, ...],
    image_format: str,
    jpeg_quality: int,
    mask_mode: str,
) -> None:
    index, stem = job
    image, masks = generator_fn(derived_rng(seed, *key, index))
    if image_format == "png":
        Image.fromarray(image).save(out_dir / "images" / f"{stem}.png", format="PNG", compress_level=1)
    else:
        Image.fromarray(image).save(out_dir / "images" / f"{stem}.jpg", format="JPEG", quality=jpeg_quality)
    Image.fromarray(mask_image(masks, mask_mode)).save(out_dir / "masks" / f"{stem}.png", format="PNG")


def write_mask_folder(
    out_dir: Path | str,
    generator_fn: GeneratorFn,
    n: int,
    seed: int,
    *,
    key: Sequence[int] = (),
    stem_prefix: str = "",
    image_format: Literal["png", "jpg"] = "png",
    jpeg_quality: int = 95,
    mask_mode: Literal["binary", "instance"] = "binary",
    overwrite: bool = False,
    workers: int = 1,
) -> list[str]:
    """Generate ``n`` images with ``generator_fn`` into ``out_dir/images`` and ``out_dir/masks``.

    Image ``i`` uses :func:`derived_rng` ``(seed, *key, i)`` and is named
    ``f"{stem_prefix}{i:04d}"``. ``workers > 1`` generates in that many processes
    (``generator_fn`` must then be picklable, e.g. a ``functools.partial``); the bytes
    written do not depend on it. Returns the stems in index order.

    Raises:
        FileExistsError: ``out_dir`` already holds images or masks and ``overwrite`` is false.
    """
    if image_format not in ("png", "jpg"):
        raise ValueError(f"image_format must be 'png' or 'jpg', not {image_format!r}")
    out_dir = Path(out_dir)
    old = [
        p
        for sub in ("images", "masks")
        if (out_dir / sub).is_dir()
        for p in (out_dir / sub).iterdir()
        if p.suffix.lower() in _IMAGE_SUFFIXES
    ]
    if old and not overwrite:
        raise FileExistsError(
            f"{out_dir} already holds {len(old)} image/mask files; pass overwrite=True to replace them "
            "or choose an empty folder"
        )
    for p in old:
        p.unlink()
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    (out_dir / "masks").mkdir(parents=True, exist_ok=True)
    jobs = [(i, f"{stem_prefix}{i:04d}") for i in range(n)]
    write = partial(
        _write_one,
        generator_fn=generator_fn,
        out_dir=out_dir,
        seed=seed,
        key=tuple(key),
        image_format=image_format,
        jpeg_quality=jpeg_quality,
        mask_mode=mask_mode,
    )
    if workers > 1 and n > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            list(pool.map(write, jobs, chunksize=max(1, n // (4 * workers))))
    else:
        for job in jobs:
            write(job)
    return [stem for _, stem in jobs]


def write_target_sites(
    out_root: Path | str,
    seed: int,
    n_train: int = 200,
    n_valid: int = 50,
    n_test: int = 100,
    size: int = 256,
    *,
    image_format: Literal["png", "jpg"] = "png",
    overwrite: bool = False,
    workers: int = 1,
) -> dict[str, dict[str, Path]]:
    """Write the colonoscopy-like target domain: site A with train/valid/test, sites B-D test only.

    Layout: ``out_root/site_<S>/<split>/{images,masks}/<S>_<split>_<i>.png``; masks are
    binary 0/255 PNGs (union of the image's polyps). ``n_test`` images per site. Also
    writes ``out_root/synthetic_sites.json`` (seed, sizes, counts, site settings), last,
    so its presence marks a complete folder. Byte-identical for a seed.

    Returns:
        ``{"site_A": {"train": Path, "valid": Path, "test": Path}, "site_B": {"test": Path}, ...}``.
    """
    out_root = Path(out_root)
    counts = {"train": n_train, "valid": n_valid, "test": n_test}
    folders: dict[str, dict[str, Path]] = {}
    for site_idx, (site, splits) in enumerate(_SITE_SPLITS.items()):
        for split in splits:
            folder = out_root / f"site_{site}" / split
            write_mask_folder(
                folder,
                partial(target_image, site=site, size=size),
                counts[split],
                seed,
                key=(_TARGET_DOMAIN, site_idx, SPLITS.index(split)),
                stem_prefix=f"{site}_{split}_",
                image_format=image_format,
                mask_mode="binary",
                overwrite=overwrite,
                workers=workers,
            )
            folders.setdefault(f"site_{site}", {})[split] = folder
            logger.info("wrote %d images to %s", counts[split], folder)
    info = {
        "generator": "samlora.demo.domains.target_image",
        "seed": seed,
        "size": size,
        "image_format": image_format,
        "counts": {f"site_{s}": {sp: counts[sp] for sp in splits} for s, splits in _SITE_SPLITS.items()},
        "sites": {name: asdict(site) for name, site in SITES.items()},
    }
    (out_root / INFO_FILE).write_text(json.dumps(info, indent=2) + "\n")
    return folders


SOURCE_KEY = (0, 2)
"""Spawn key of the source domain's held-out test split (the reference model's model-card test images)."""


def write_source_test(out_dir: Path | str, n: int, seed: int = 0, size: int = 256) -> Path:
    """Write ``n`` held-out images of the reference model's synthetic source domain as a COCO folder.

    The images are those of the model card's test split (``python -m samlora.demo.pretrain``, seed
    ``seed``, same generator and key), its overlapping objects as separate RLE instances, so the
    folder reads the same whatever ``data.mask_type`` says. Layout: ``out_dir/test/*.png`` +
    ``out_dir/test/_annotations.coco.json`` (a Roboflow-style split); returns ``out_dir``.
    """
    from pycocotools import mask as mask_utils

    from .domains import source_image

    folder = Path(out_dir) / "test"
    folder.mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for i in range(n):
        image, masks = source_image(derived_rng(seed, *SOURCE_KEY, i), size=size)
        name = f"test_{i:04d}.png"
        Image.fromarray(image).save(folder / name, format="PNG", compress_level=1)
        images.append({"id": i + 1, "file_name": name, "height": image.shape[0], "width": image.shape[1]})
        for mask in masks:
            rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
            x, y, w, h = (float(v) for v in mask_utils.toBbox(rle))
            rle["counts"] = rle["counts"].decode("ascii")
            annotations.append(
                {"id": len(annotations) + 1, "image_id": i + 1, "category_id": 1, "segmentation": rle,
                 "area": float(mask.sum()), "bbox": [x, y, w, h], "iscrowd": 0}
            )  # fmt: skip
    coco = {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "object"}]}
    (folder / "_annotations.coco.json").write_text(json.dumps(coco) + "\n")
    return Path(out_dir)
