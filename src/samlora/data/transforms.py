"""Training augmentations of a decoded :class:`~samlora.data.records.Sample`, run in DataLoader workers.

Image and masks are transformed together (image: bilinear, antialiased when
shrinking, via Pillow; masks: nearest, sampling the same source positions, so
they stay bool and aligned with the image). Every setting at 0 (the default)
means off; :meth:`Augment.identity` has them all off and evaluation never
augments. Steps, in this order, each drawing from the sample's generator:

1. ``hflip`` / ``vflip``: flip with this probability.
2. ``rot90``: with this probability rotate by 90, 180 or 270 degrees
   (uniformly; a 90/270 rotation swaps height and width).
3. ``scale = (lo, hi)``: zoom by ``s ~ Uniform(lo, hi)`` keeping the image
   size (large-scale jitter): ``s > 1`` shows an ``H/s x W/s`` window enlarged
   to ``H x W``; ``s < 1`` shrinks the image and pastes it at a random place on
   a black ``H x W`` canvas (masks False there).
4. ``crop``: with this probability cut a window of ``u * H x v * W`` pixels,
   ``u, v ~ Uniform(crop_min_size, 1)``, kept at that size (the model's resize
   then enlarges it).
5. ``brightness``, ``contrast``, ``saturation``, ``hue``: colour jitter with
   torchvision's semantics (factors drawn from ``[max(0, 1 - b), 1 + b]``, hue
   shifted by up to ``hue`` of the colour circle), in a random order.

Windows of steps 3 and 4 always keep at least one pixel of one object, chosen
uniformly among the non-crowd objects (any object if all are crowd); other
objects may leave the window. Objects that had pixels before and have none
after are dropped from the sample and counted (:class:`AugmentReport`,
:attr:`Augment.dropped_objects`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from .records import Sample

__all__ = ["Augment", "AugmentPlan", "AugmentReport"]

_GRAY = np.array([0.299, 0.587, 0.114], dtype=np.float32)


@dataclass
class AugmentReport:
    """What one call did: ``ops`` applied in order, ``dropped`` objects that vanished."""

    ops: list[str] = field(default_factory=list)
    dropped: int = 0


@dataclass
class AugmentPlan:
    """Every random choice of one augmentation, drawn on the CPU and applied on the device.

    ``matrix`` (``2 x 3``) maps continuous ``XY`` pixel coordinates of the augmented image
    (``size = (h, w)``) to those of the source image: ``source = matrix @ (x, y, 1)``; it composes
    the flips, the rotation, the zoom and the crop. ``colour`` lists the colour steps in the order
    they run: ``(name, value)`` with a factor (brightness, contrast, saturation) or a hue shift
    (fraction of the circle). See :mod:`samlora.data.warp` for how it is applied.
    """

    matrix: np.ndarray
    size: tuple[int, int]
    colour: list[tuple[str, float]] = field(default_factory=list)
    ops: list[str] = field(default_factory=list)

    @classmethod
    def identity(cls, size: tuple[int, int]) -> AugmentPlan:
        return cls(np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]), (int(size[0]), int(size[1])))


@dataclass
class Augment:
    """Consistent image + mask augmentations from plain settings (see the module docstring).

    Attributes:
        hflip, vflip, rot90, crop: probabilities in ``[0, 1]``.
        scale: ``(lo, hi)`` zoom range, ``0 < lo <= hi``; ``(1, 1)`` is off.
        crop_min_size: smallest crop side as a fraction of the image side.
        brightness, contrast, saturation: jitter strengths ``>= 0``.
        hue: jitter strength in ``[0, 0.5]`` (fraction of the hue circle).
        enabled: ``False`` makes every call return the sample unchanged.
        dropped_objects: objects dropped by this instance so far (per worker).
    """

    hflip: float = 0.0
    vflip: float = 0.0
    rot90: float = 0.0
    scale: tuple[float, float] = (1.0, 1.0)
    crop: float = 0.0
    crop_min_size: float = 0.5
    brightness: float = 0.0
    contrast: float = 0.0
    saturation: float = 0.0
    hue: float = 0.0
    enabled: bool = True
    dropped_objects: int = field(default=0, init=False, compare=False)

    def __post_init__(self) -> None:
        problems = []
        for key in ("hflip", "vflip", "rot90", "crop"):
            if not 0.0 <= getattr(self, key) <= 1.0:
                problems.append(f"'{key}' is a probability in [0, 1], got {getattr(self, key)}")
        self.scale = (float(self.scale[0]), float(self.scale[1]))
        if not 0.0 < self.scale[0] <= self.scale[1]:
            problems.append(f"'scale' must be (lo, hi) with 0 < lo <= hi, got {self.scale}")
        if not 0.0 < self.crop_min_size <= 1.0:
            problems.append(f"'crop_min_size' must be in (0, 1], got {self.crop_min_size}")
        for key in ("brightness", "contrast", "saturation"):
            if getattr(self, key) < 0:
                problems.append(f"'{key}' must be >= 0, got {getattr(self, key)}")
        if not 0.0 <= self.hue <= 0.5:
            problems.append(f"'hue' must be in [0, 0.5], got {self.hue}")
        if problems:
            raise ValueError("invalid augmentation settings: " + "; ".join(problems))

    @classmethod
    def identity(cls) -> Augment:
        """No augmentation (what evaluation uses)."""
        return cls(enabled=False)

    @property
    def is_identity(self) -> bool:
        """True when a call cannot change a sample."""
        probs = (self.hflip, self.vflip, self.rot90, self.crop)
        colour = (self.brightness, self.contrast, self.saturation, self.hue)
        return not self.enabled or (not any(probs) and not any(colour) and self.scale == (1.0, 1.0))

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        """The augmented sample (``image`` ``H' x W' x 3`` uint8, ``masks`` ``K' x H' x W'`` bool)."""
        out, report = self.apply(sample, rng)
        self.dropped_objects += report.dropped
        return out

    def apply(self, sample: Sample, rng: np.random.Generator) -> tuple[Sample, AugmentReport]:
        """Like ``__call__``, also returning what was done; does not update ``dropped_objects``."""
        report = AugmentReport()
        if self.is_identity:
            return sample, report
        image, masks = sample.image, sample.masks.astype(bool, copy=False)
        had = masks.any(axis=(1, 2))
        anchors = _anchor_order(had, sample.iscrowd.astype(bool))
        if self.hflip and rng.random() < self.hflip:
            image, masks = image[:, ::-1], masks[:, :, ::-1]
            report.ops.append("hflip")
        if self.vflip and rng.random() < self.vflip:
            image, masks = image[::-1], masks[:, ::-1]
            report.ops.append("vflip")
        if self.rot90 and rng.random() < self.rot90:
            k = int(rng.integers(1, 4))
            image, masks = np.rot90(image, k, axes=(0, 1)), np.rot90(masks, k, axes=(1, 2))
            report.ops.append(f"rot90x{k}")
        if self.scale != (1.0, 1.0):
            s = float(rng.uniform(*self.scale))
            image, masks = _zoom(np.ascontiguousarray(image), masks, s, rng, anchors)
            report.ops.append(f"scale{s:.3f}")
        if self.crop and rng.random() < self.crop:
            h, w = image.shape[:2]
            ch = max(1, round(h * rng.uniform(self.crop_min_size, 1.0)))
            cw = max(1, round(w * rng.uniform(self.crop_min_size, 1.0)))
            y0, x0 = _window(masks, anchors, (ch, cw), rng)
            image, masks = image[y0 : y0 + ch, x0 : x0 + cw], masks[:, y0 : y0 + ch, x0 : x0 + cw]
            report.ops.append(f"crop{ch}x{cw}")
        image = self._colour(np.ascontiguousarray(image), rng, report.ops)
        keep = ~had | masks.any(axis=(1, 2))
        report.dropped = int((~keep).sum())
        out = dataclasses.replace(
            sample,
            image=np.ascontiguousarray(image),
            masks=np.ascontiguousarray(masks[keep]),
            category_ids=sample.category_ids[keep],
            iscrowd=sample.iscrowd[keep],
            ann_ids=[a for a, k in zip(sample.ann_ids, keep) if k],
        )
        return out, report

    def plan(
        self,
        size: tuple[int, int],
        pixels_of: Callable[[list[int]], dict[int, tuple[np.ndarray, np.ndarray]]],
        anchors: np.ndarray,
        rng: np.random.Generator,
        boxes: np.ndarray | None = None,
    ) -> AugmentPlan:
        """The same steps as :meth:`apply`, drawn as an :class:`AugmentPlan` for the device.

        ``size`` is the source ``(h, w)``; ``pixels_of(ks)`` gives each object's ``(rows, cols)``
        in the source; ``anchors`` the objects a zoom or crop window keeps a pixel of (see
        :func:`_anchor_order`); ``boxes`` (``K x 4`` ``row0, col0, row1, col1``, ends exclusive)
        the boxes of their pixels, when known (else they come from the pixels). Nothing is resampled here: windows are placed on the objects'
        source pixels mapped through the steps drawn so far.
        """
        plan = AugmentPlan.identity(size)
        if self.is_identity:
            return plan
        h, w = plan.size
        step = _Steps(plan, pixels_of, anchors, boxes)
        if self.hflip and rng.random() < self.hflip:
            step.then([[-1.0, 0.0, w], [0.0, 1.0, 0.0]], (h, w), "hflip")
        if self.vflip and rng.random() < self.vflip:
            step.then([[1.0, 0.0, 0.0], [0.0, -1.0, h]], (h, w), "vflip")
        if self.rot90 and rng.random() < self.rot90:
            k = int(rng.integers(1, 4))
            for _ in range(k):  # np.rot90: out[i, j] = in[j, W - 1 - i]
                h, w = plan.size
                step.then([[0.0, -1.0, w], [1.0, 0.0, 0.0]], (w, h), None)
            plan.ops.append(f"rot90x{k}")
        if self.scale != (1.0, 1.0):
            s = float(rng.uniform(*self.scale))
            h, w = plan.size
            if s >= 1.0:
                bh, bw = h / s, w / s
                pixel = step.anchor_pixel(rng)
                r, c = pixel if pixel is not None else (None, None)
                y0, x0 = _box_start(h, bh, r, rng), _box_start(w, bw, c, rng)
                step.then([[bw / w, 0.0, x0], [0.0, bh / h, y0]], (h, w), None)
            else:
                rh, rw = max(1, round(h * s)), max(1, round(w * s))
                oy, ox = int(rng.integers(h - rh + 1)), int(rng.integers(w - rw + 1))
                step.then([[w / rw, 0.0, -ox * w / rw], [0.0, h / rh, -oy * h / rh]], (h, w), None)
            plan.ops.append(f"scale{s:.3f}")
        if self.crop and rng.random() < self.crop:
            h, w = plan.size
            ch = max(1, round(h * rng.uniform(self.crop_min_size, 1.0)))
            cw = max(1, round(w * rng.uniform(self.crop_min_size, 1.0)))
            pixel = step.anchor_pixel(rng)
            if pixel is None:
                y0, x0 = int(rng.integers(h - ch + 1)), int(rng.integers(w - cw + 1))
            else:
                r, c = pixel
                y0 = int(rng.integers(max(0, r - ch + 1), min(r, h - ch) + 1))
                x0 = int(rng.integers(max(0, c - cw + 1), min(c, w - cw) + 1))
            step.then([[1.0, 0.0, x0], [0.0, 1.0, y0]], (ch, cw), f"crop{ch}x{cw}")
        for name, strength in self._colour_steps(rng):
            if name == "hue":
                plan.colour.append((name, float(rng.uniform(-strength, strength))))
                plan.ops.append(f"hue{plan.colour[-1][1]:+.3f}")
            else:
                plan.colour.append((name, float(rng.uniform(max(0.0, 1.0 - strength), 1.0 + strength))))
                plan.ops.append(f"{name}{plan.colour[-1][1]:.3f}")
        return plan

    def _colour_steps(self, rng: np.random.Generator) -> list[tuple[str, float]]:
        """The colour steps that are on, in a random order."""
        steps = [
            (name, strength)
            for name, strength in (
                ("brightness", self.brightness),
                ("contrast", self.contrast),
                ("saturation", self.saturation),
                ("hue", self.hue),
            )
            if strength > 0
        ]
        return [steps[int(i)] for i in rng.permutation(len(steps))] if steps else []

    def _colour(self, image: np.ndarray, rng: np.random.Generator, ops: list[str]) -> np.ndarray:
        steps = self._colour_steps(rng)
        if not steps:
            return image
        out = image.astype(np.float32)
        for name, strength in steps:
            if name == "hue":
                shift = float(rng.uniform(-strength, strength))
                out = _shift_hue(np.clip(out + 0.5, 0, 255).astype(np.uint8), shift).astype(np.float32)
                ops.append(f"hue{shift:+.3f}")
                continue
            factor = float(rng.uniform(max(0.0, 1.0 - strength), 1.0 + strength))
            if name == "brightness":
                out = out * factor
            elif name == "contrast":
                out = factor * out + (1.0 - factor) * float((out @ _GRAY).mean())
            else:
                out = factor * out + (1.0 - factor) * (out @ _GRAY)[..., None]
            out = np.clip(out, 0.0, 255.0)
            ops.append(f"{name}{factor:.3f}")
        return np.clip(out + 0.5, 0, 255).astype(np.uint8)


class _Steps:
    """Composes an :class:`AugmentPlan` step by step and finds anchor pixels through it.

    Pixels are fetched only when needed: an object whose box stays in view keeps all its pixels
    there (an affine map keeps them inside the box's image), so only the objects the view cuts,
    and the one chosen, have their pixels read.
    """

    def __init__(self, plan: AugmentPlan, pixels_of: Callable, anchors: np.ndarray, boxes: np.ndarray | None):
        self.plan = plan
        self.pixels_of = pixels_of
        self.anchors = [int(k) for k in anchors]
        self.boxes = boxes
        self.centres: dict[int, np.ndarray] = {}  # k -> 2 x N source pixel centres (x, y)
        self.corners: dict[int, np.ndarray | None] = {}  # k -> 2 x 4 corners of their box (None: no pixels)

    def then(self, step: list[list[float]], size: tuple[int, int], op: str | None) -> None:
        """Append a step whose ``2 x 3`` matrix maps new coordinates to the current ones."""
        m = np.vstack([self.plan.matrix, [0.0, 0.0, 1.0]])
        self.plan.matrix = (m @ np.vstack([np.asarray(step, dtype=np.float64), [0.0, 0.0, 1.0]]))[:2]
        self.plan.size = (int(size[0]), int(size[1]))
        if op:
            self.plan.ops.append(op)

    def _fetch(self, ks: list[int]) -> None:
        missing = [k for k in ks if k not in self.centres]
        for k, (rows, cols) in (self.pixels_of(missing) if missing else {}).items():
            self.centres[k] = np.stack([cols + 0.5, rows + 0.5]).astype(np.float64)

    def _corners(self, k: int) -> np.ndarray | None:
        if k not in self.corners:
            if self.boxes is not None:
                r0, c0, r1, c1 = (float(v) for v in self.boxes[k])
                box = None if r1 <= r0 else (c0 + 0.5, r0 + 0.5, c1 - 0.5, r1 - 0.5)
            else:
                self._fetch(self.anchors)
                xy = self.centres[k]
                box = (*xy.min(axis=1), *xy.max(axis=1)) if xy.shape[1] else None
            self.corners[k] = (
                None
                if box is None
                else np.array([[box[0], box[2], box[0], box[2]], [box[1], box[1], box[3], box[3]]])
            )
        return self.corners[k]

    def anchor_pixel(self, rng: np.random.Generator) -> tuple[int, int] | None:
        """``(row, col)`` now of a uniform source pixel (still in view) of a uniform anchor object."""
        inverse = np.linalg.inv(np.vstack([self.plan.matrix, [0.0, 0.0, 1.0]]))[:2]
        linear, shift = inverse[:, :2], inverse[:, 2:]
        h, w = self.plan.size

        def inside(xy: np.ndarray) -> np.ndarray:
            return (xy[0] >= 0) & (xy[0] < w) & (xy[1] >= 0) & (xy[1] < h)

        alive: list[tuple[int, np.ndarray | None]] = []  # (object, its pixels now; None: all of them)
        for k in self.anchors:
            corners = self._corners(k)
            if corners is None:
                continue
            if inside(linear @ corners + shift).all():
                alive.append((k, None))
                continue
            self._fetch([k])
            now = linear @ self.centres[k] + shift
            kept = inside(now)
            if kept.any():
                alive.append((k, now[:, kept]))
        if not alive:
            return None
        k, now = alive[int(rng.integers(len(alive)))]
        if now is None:
            self._fetch([k])
            i = int(rng.integers(self.centres[k].shape[1]))
            x, y = (linear @ self.centres[k][:, i : i + 1] + shift)[:, 0]
        else:
            i = int(rng.integers(now.shape[1]))
            x, y = now[:, i]
        return int(y), int(x)


def _anchor_order(had: np.ndarray, crowd: np.ndarray) -> np.ndarray:
    """Indices of objects a window may be anchored on: non-crowd with pixels, else any with pixels."""
    candidates = np.flatnonzero(had & ~crowd)
    return candidates if candidates.size else np.flatnonzero(had)


def _anchor_pixel(masks: np.ndarray, anchors: np.ndarray, rng: np.random.Generator) -> tuple[int, int] | None:
    """``(row, col)`` of a uniform pixel of a uniformly chosen anchor object, or None without objects."""
    alive = [int(k) for k in anchors if masks[int(k)].any()]
    if not alive:
        return None
    rows, cols = np.nonzero(masks[alive[int(rng.integers(len(alive)))]])
    i = int(rng.integers(len(rows)))
    return int(rows[i]), int(cols[i])


def _window(
    masks: np.ndarray, anchors: np.ndarray, size: tuple[int, int], rng: np.random.Generator
) -> tuple[int, int]:
    """Top-left ``(y0, x0)`` of an integer window of ``size`` holding an anchor pixel (uniform if none)."""
    h, w = masks.shape[1:]
    ch, cw = size
    pixel = _anchor_pixel(masks, anchors, rng)
    if pixel is None:
        return int(rng.integers(h - ch + 1)), int(rng.integers(w - cw + 1))
    r, c = pixel
    y0 = int(rng.integers(max(0, r - ch + 1), min(r, h - ch) + 1))
    x0 = int(rng.integers(max(0, c - cw + 1), min(c, w - cw) + 1))
    return y0, x0


def _zoom(
    image: np.ndarray, masks: np.ndarray, s: float, rng: np.random.Generator, anchors: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Zoom by ``s`` keeping the ``H x W`` size: enlarge a window (``s > 1``) or shrink and pad (``s < 1``)."""
    h, w = image.shape[:2]
    if s >= 1.0:
        bh, bw = h / s, w / s
        pixel = _anchor_pixel(masks, anchors, rng)
        r, c = pixel if pixel is not None else (None, None)
        y0 = _box_start(h, bh, r, rng)
        x0 = _box_start(w, bw, c, rng)
        box = (x0, y0, min(x0 + bw, float(w)), min(y0 + bh, float(h)))
        pil = Image.fromarray(image).resize((w, h), Image.Resampling.BILINEAR, box=box)
        rows = _nearest(y0, bh, h, h)
        cols = _nearest(x0, bw, w, w)
        return np.array(pil), masks[:, rows[:, None], cols[None, :]]
    rh, rw = max(1, round(h * s)), max(1, round(w * s))
    small = np.array(Image.fromarray(image).resize((rw, rh), Image.Resampling.BILINEAR))
    small_masks = masks[:, _nearest(0.0, h, rh, h)[:, None], _nearest(0.0, w, rw, w)[None, :]]
    oy, ox = int(rng.integers(h - rh + 1)), int(rng.integers(w - rw + 1))
    canvas = np.zeros_like(image)
    canvas[oy : oy + rh, ox : ox + rw] = small
    out_masks = np.zeros_like(masks)
    out_masks[:, oy : oy + rh, ox : ox + rw] = small_masks
    return canvas, out_masks


def _box_start(side: int, extent: float, anchor: int | None, rng: np.random.Generator) -> float:
    """Start of a source window of ``extent`` pixels in ``[0, side]`` containing pixel ``anchor`` entirely."""
    lo, hi = 0.0, side - extent
    if anchor is not None:
        lo, hi = max(lo, anchor + 1.0 - extent), min(hi, float(anchor))
        if lo > hi:
            lo = hi = min(max(anchor + 0.5 - extent / 2.0, 0.0), side - extent)
    return float(rng.uniform(lo, hi)) if hi > lo else lo


def _nearest(start: float, extent: float, out: int, side: int) -> np.ndarray:
    """Source index of each of ``out`` output pixels whose centres map into ``[start, start + extent)``."""
    centres = start + (np.arange(out) + 0.5) * (extent / out)
    return np.clip(np.floor(centres).astype(np.int64), 0, side - 1)


def _shift_hue(image: np.ndarray, shift: float) -> np.ndarray:
    """Rotate the hue of an ``H x W x 3`` uint8 RGB image by ``shift`` of the circle (Pillow HSV)."""
    hsv = np.array(Image.fromarray(image).convert("HSV"))
    hsv[..., 0] = (hsv[..., 0].astype(np.int64) + round(shift * 255)) % 256
    back = Image.frombytes("HSV", (image.shape[1], image.shape[0]), np.ascontiguousarray(hsv).tobytes())
    return np.array(back.convert("RGB"))
