"""Overlays, prompts and side-by-side panels (PIL only, fast, no display needed).

Masks are drawn at the original image resolution in distinct colours with a
1-pixel outline. The user's prompts are drawn apart from the prediction: a box
as a dashed white-on-black outline, clicks as numbered discs (green positive,
red negative) with a white ring. Text sits on a dark plate with a white
outline, legible on any mask colour. Panels put image | ground truth |
predictions next to each other with a title above each tile.
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


POSITIVE = (40, 200, 70)
"""Disc colour of a positive click."""
NEGATIVE = (230, 40, 40)
"""Disc colour of a negative click."""


def font(size: int = 12) -> ImageFont.ImageFont:
    """A scalable font (Pillow's bundled one) of ``size`` pixels."""
    return ImageFont.load_default(size=size)


def text_label(
    draw: ImageDraw.ImageDraw, xy: tuple[float, float], text: str, accent=None, size: int = 12
) -> None:
    """White text on a dark plate (outlined in ``accent`` if given) at ``xy`` (top-left): legible on
    any background colour, kept inside the image."""
    face = font(size)
    left, top, right, bottom = draw.textbbox((0, 0), text, font=face)
    width, height = right - left + 6, bottom - top + 4
    image_w, image_h = draw.im.size
    x = min(max(float(xy[0]), 0.0), max(image_w - width, 0))
    y = min(max(float(xy[1]), 0.0), max(image_h - height, 0))
    draw.rectangle([x, y, x + width, y + height], fill=(20, 20, 20), outline=accent or (255, 255, 255))
    draw.text((x + 3 - left, y + 2 - top), text, fill=(255, 255, 255), font=face)


def draw_labels(
    image: np.ndarray,
    anchors: Sequence[Sequence[float]] | np.ndarray,
    texts: Sequence[str],
    colors: Sequence[tuple[int, int, int]] | None = None,
) -> np.ndarray:
    """:func:`text_label` plates with their bottom-left corner at each ``anchor`` (XY; kept inside the
    image), outlined in each colour (default: :func:`palette`, the masks' colours)."""
    pil = Image.fromarray(np.ascontiguousarray(image))
    draw = ImageDraw.Draw(pil)
    colors = list(colors) if colors is not None else palette(len(texts))
    for k, (anchor, text) in enumerate(zip(anchors, texts)):
        text_label(draw, (float(anchor[0]), float(anchor[1]) - 17), text, accent=colors[k % len(colors)])
    return np.asarray(pil)


def _dashed(
    draw: ImageDraw.ImageDraw, a: tuple[float, float], b: tuple[float, float], dash: float = 6
) -> None:
    """White dashes over a continuous black line from ``a`` to ``b``."""
    draw.line([a, b], fill=(0, 0, 0), width=3)
    length = float(np.hypot(b[0] - a[0], b[1] - a[1]))
    steps = max(int(length // dash), 1)
    for k in range(0, steps, 2):
        t0, t1 = k / steps, min((k + 1) / steps, 1.0)
        p0 = (a[0] + (b[0] - a[0]) * t0, a[1] + (b[1] - a[1]) * t0)
        p1 = (a[0] + (b[0] - a[0]) * t1, a[1] + (b[1] - a[1]) * t1)
        draw.line([p0, p1], fill=(255, 255, 255), width=1)


def draw_prompts(
    image: np.ndarray,
    boxes: Sequence[Sequence[float]] | np.ndarray | None = None,
    points: Sequence | np.ndarray | None = None,
    point_labels: Sequence | np.ndarray | None = None,
    numbered: bool = True,
) -> np.ndarray:
    """Draw the user's prompts on an ``H x W x 3`` uint8 image (pixels of that image).

    Args:
        boxes: ``N x 4`` XYXY: dashed white-on-black outlines (never a mask colour).
        points: ``P x 2`` or ``N x P x 2`` XY clicks; ``point_labels`` the same shape without the last
            axis (1 positive: green, 0 negative: red, anything else, e.g. -10 padding: not drawn).
        numbered: write each object's click order (1, 2, ...) in its disc, else ``+`` / ``-``.
    """
    pil = Image.fromarray(np.ascontiguousarray(image))
    draw = ImageDraw.Draw(pil)
    for box in np.asarray(boxes if boxes is not None else [], dtype=float).reshape(-1, 4):
        x0, y0, x1, y1 = (float(v) for v in box)
        for a, b in (((x0, y0), (x1, y0)), ((x1, y0), (x1, y1)), ((x1, y1), (x0, y1)), ((x0, y1), (x0, y0))):
            _dashed(draw, a, b)
    pts = np.asarray(points if points is not None else [], dtype=float)
    if pts.size:
        pts = pts[None] if pts.ndim == 2 else pts  # one object's P x 2 -> 1 x P x 2
        labs = (
            np.ones(pts.shape[:2])
            if point_labels is None
            else np.asarray(point_labels).reshape(pts.shape[:2])
        )
        radius = max(7.0, min(pil.size) / 28)
        face = font(int(radius * 1.4))
        for obj_points, obj_labels in zip(pts, labs):
            for order, ((x, y), lab) in enumerate(zip(obj_points, obj_labels), start=1):
                if lab not in (0, 1):
                    continue
                fill = POSITIVE if lab == 1 else NEGATIVE
                draw.ellipse(
                    [x - radius, y - radius, x + radius, y + radius],
                    fill=fill,
                    outline=(255, 255, 255),
                    width=2,
                )
                text = str(order) if numbered else ("+" if lab == 1 else "-")
                draw.text(
                    (x, y),
                    text,
                    fill=(255, 255, 255),
                    font=face,
                    anchor="mm",
                    stroke_width=1,
                    stroke_fill=(0, 0, 0),
                )
    return np.asarray(pil)


def overlay(
    image: np.ndarray,
    masks: Sequence[np.ndarray] | np.ndarray,
    colors: Sequence[tuple[int, int, int]] | None = None,
    alpha: float = 0.45,
    boxes: np.ndarray | None = None,
    labels: Sequence[str] | None = None,
    outline_boxes: bool = True,
) -> np.ndarray:
    """Draw ``K x H x W`` bool masks (and optional ``K x 4`` XYXY boxes with labels) on an ``H x W x 3`` image.

    Boxes are the predictions' (drawn in their mask's colour); ``outline_boxes=False`` only places
    each label at its box's top-left corner. Labels are :func:`text_label` plates.
    """
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
        if outline_boxes:
            draw.rectangle([float(v) for v in box], outline=color, width=2)
        if labels is not None and k < len(labels):
            text_label(draw, (float(box[0]) + 1, float(box[1]) + 1), labels[k], accent=color)
    return np.asarray(pil)


PANEL_HEIGHT = 256
"""Height in pixels of a panel's tiles."""


def to_height(array: np.ndarray, height: int = PANEL_HEIGHT) -> np.ndarray:
    """An ``H x W x 3`` image (bilinear) or ``... x H x W`` bool masks (nearest) resized to ``height``
    rows, so that panels are drawn at the size they are shown (labels and clicks stay legible)."""
    if array.dtype == bool:
        masks = array.reshape(-1, *array.shape[-2:])
        h, w = masks.shape[-2:]
        size = (max(1, round(w * height / h)), height)
        out = [np.asarray(Image.fromarray(m).resize(size, Image.NEAREST)) for m in masks]
        return (
            np.stack(out).reshape(*array.shape[:-2], height, size[0])
            if out
            else np.zeros((*array.shape[:-2], height, size[0]), bool)
        )
    h, w = array.shape[:2]
    return np.asarray(Image.fromarray(array).resize((max(1, round(w * height / h)), height), Image.BILINEAR))


def panel(
    tiles: Sequence[tuple[str, np.ndarray]], height: int = PANEL_HEIGHT, path: str | Path | None = None
) -> np.ndarray:
    """Tiles side by side, each scaled to ``height`` with its title above; saved to ``path`` if given.

    Draw tiles at that height already (:func:`to_height`) so that what is drawn on them keeps its size."""
    face = font(12)
    title_h = 18
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
        draw.text((x + 2, 2), title, fill=(0, 0, 0), font=face)
        x += img.width + 4
    array = np.asarray(canvas)
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        canvas.save(path)
    return array
