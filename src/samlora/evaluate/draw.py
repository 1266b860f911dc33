"""Overlays and side-by-side panels (PIL only, fast, no display needed).

Masks are drawn at the original image resolution in distinct colours with a
1-pixel outline; panels put image | ground truth | predictions next to each
other with a title above each tile.
"""

from __future__ import annotations

import colorsys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont


def palette(n: int, seed: float = 0.13) -> list[tuple[int, int, int]]:
    """``n`` well-separated RGB colours (golden-ratio hue steps)."""
    out = []
    for i in range(n):
        hue = (seed + i * 0.618033988749895) % 1.0
        r, g, b = colorsys.hsv_to_rgb(hue, 0.85, 1.0)
        out.append((int(r * 255), int(g * 255), int(b * 255)))
    return out


def _edges(mask: np.ndarray) -> np.ndarray:
    inner = mask.copy()
    inner[1:, :] &= mask[:-1, :]
    inner[:-1, :] &= mask[1:, :]
    inner[:, 1:] &= mask[:, :-1]
    inner[:, :-1] &= mask[:, 1:]
    return mask & ~inner


def overlay(
    image: np.ndarray,
    masks: Sequence[np.ndarray] | np.ndarray,
    colors: Sequence[tuple[int, int, int]] | None = None,
    alpha: float = 0.45,
    boxes: np.ndarray | None = None,
    labels: Sequence[str] | None = None,
) -> np.ndarray:
    """Draw ``K x H x W`` bool masks (and optional ``K x 4`` XYXY boxes with labels) on an ``H x W x 3`` image."""
    out = image.astype(np.float32).copy()
    masks = list(masks)
    colors = list(colors) if colors is not None else palette(len(masks))
    for mask, color in zip(masks, colors):
        mask = np.asarray(mask, dtype=bool)
        c = np.asarray(color, dtype=np.float32)
        out[mask] = out[mask] * (1 - alpha) + c * alpha
        out[_edges(mask)] = c
    result = out.clip(0, 255).astype(np.uint8)
    if boxes is None or not len(boxes):
        return result
    pil = Image.fromarray(result)
    draw = ImageDraw.Draw(pil)
    for k, box in enumerate(np.asarray(boxes, dtype=float)):
        color = colors[k % len(colors)] if colors else (255, 255, 0)
        draw.rectangle([float(v) for v in box], outline=color, width=2)
        if labels is not None and k < len(labels):
            draw.text(
                (float(box[0]) + 2, float(box[1]) + 1), labels[k], fill=color, font=ImageFont.load_default()
            )
    return np.asarray(pil)


def panel(
    tiles: Sequence[tuple[str, np.ndarray]], height: int = 256, path: str | Path | None = None
) -> np.ndarray:
    """Tiles side by side, each scaled to ``height`` with its title above; saved to ``path`` if given."""
    font = ImageFont.load_default()
    title_h = 16
    resized = []
    for title, tile in tiles:
        img = Image.fromarray(tile)
        width = max(1, round(img.width * height / img.height))
        resized.append((title, img.resize((width, height), Image.BILINEAR)))
    total_w = sum(img.width for _, img in resized) + 4 * (len(resized) - 1)
    canvas = Image.new("RGB", (total_w, height + title_h), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    x = 0
    for title, img in resized:
        canvas.paste(img, (x, title_h))
        draw.text((x + 2, 2), title, fill=(0, 0, 0), font=font)
        x += img.width + 4
    array = np.asarray(canvas)
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        canvas.save(path)
    return array
