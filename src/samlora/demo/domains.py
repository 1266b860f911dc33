"""The demo's two synthetic domains: a "natural" source domain and a colonoscopy-like target.

* :func:`source_image`: crisp, colourful scenes with 3-12 objects of varied shapes, colours
  and textures on textured backgrounds; instance masks of the visible pixels.
* :func:`target_image`: endoscope-like frames of pink mucosa (folds, vessels, lumen,
  illumination fall-off, vignetting, specular highlights, blur) with 1-2 soft-edged,
  low-contrast polyps, rendered through the "camera" of one of four sites (``SITES``).

Both take a :class:`numpy.random.Generator` and return ``(image, masks)``: ``image`` is
``H x W x 3`` uint8 RGB, ``masks`` is ``K x H x W`` bool (one mask per object). Writing
them as image/mask folders is in :mod:`samlora.demo.folders`.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter

from .shapes import (
    TEXTURES,
    eval_profile,
    pixel_grid,
    radial_profile,
    random_colour,
    random_shape,
    resize_float,
    smooth_noise,
    texture_fill,
    to_rgb_uint8,
    vessel_map,
)

SHAPE_KINDS = ("convex", "concave", "ellipse", "blob", "ring", "curve")
_SHAPE_P = (0.18, 0.17, 0.17, 0.18, 0.12, 0.18)
_TEXTURE_P = (0.3, 0.25, 0.15, 0.2, 0.1)


# ----------------------------------------------------------------------------- source domain


def _source_background(rng: np.random.Generator, size: int) -> np.ndarray:
    kind = rng.choice(["gradient", "noise", "stripes", "checker"], p=[0.35, 0.35, 0.15, 0.15])
    c1 = random_colour(rng, (0.0, 0.8), (0.15, 0.95))
    if kind in ("gradient", "noise"):
        c2 = random_colour(rng, (0.0, 0.8), (0.15, 0.95))
    else:  # a regular pattern stays low-contrast so objects stand out from it
        c2 = np.clip(c1 + rng.normal(0.0, 0.08, 3), 0, 1).astype(np.float32)
    bg = texture_fill(rng, str(kind), size, size, c1, c2)
    return bg * (1.0 + 0.08 * smooth_noise(rng, size, size, 4, octaves=2))


def _contrasting_colour(rng: np.random.Generator, under: np.ndarray, min_dist: float = 0.35) -> np.ndarray:
    """A random colour at least ``min_dist`` (RGB, ``[0, 1]``) from ``under`` (best of 12 tries)."""
    best, best_d = None, -1.0
    for _ in range(12):
        c = random_colour(rng, (0.0, 1.0), (0.1, 1.0))
        d = float(np.linalg.norm(c - under))
        if d >= min_dist:
            return c
        if d > best_d:
            best, best_d = c, d
    return best


def source_image(rng: np.random.Generator, size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """One "natural" scene: several crisp, colourful objects on a textured background.

    Objects (convex / concave polygons, ellipses, smooth blobs, rings, thin curves 2-6 px
    wide) are painted larger-first with flat, gradient, striped, noisy or checkered fills
    that contrast with what lies under them. Objects whose visible part is tiny (less than
    ``0.1%`` of the image or 10% of the drawn shape) are dropped from ``masks``.

    Returns:
        image: ``size x size x 3`` uint8 RGB.
        masks: ``K x size x size`` bool, ``K >= 1``, pairwise disjoint: the visible pixels of
        each object, in painting order.
    """
    canvas = _source_background(rng, size)
    labels = np.zeros((size, size), np.int16)
    min_area = max(16, int(0.001 * size * size))
    radii = np.sort(size * np.exp(rng.uniform(np.log(0.05), np.log(0.25), int(rng.integers(3, 13)))))[::-1]
    drawn: list[int] = []
    attempts = 0
    while len(drawn) < len(radii) and attempts < 3 * len(radii):
        attempts += 1
        kind = str(rng.choice(SHAPE_KINDS, p=_SHAPE_P))
        mask = random_shape(rng, kind, size, size, float(radii[len(drawn)]))
        rows, cols = np.any(mask, axis=1), np.any(mask, axis=0)
        area = int(np.count_nonzero(mask))
        if area < min_area:
            continue
        y0, y1 = np.flatnonzero(rows)[[0, -1]]
        x0, x1 = np.flatnonzero(cols)[[0, -1]]
        m = mask[y0 : y1 + 1, x0 : x1 + 1]
        region = canvas[:, y0 : y1 + 1, x0 : x1 + 1]
        c1 = _contrasting_colour(rng, np.array([region[ch][m].mean() for ch in range(3)]))
        c2 = np.clip(c1 + rng.normal(0.0, 0.12, 3), 0, 1).astype(np.float32)
        texture = str(rng.choice(TEXTURES, p=_TEXTURE_P))
        fill = texture_fill(rng, texture, m.shape[0], m.shape[1], c1, c2)
        for ch in range(3):
            np.copyto(region[ch], fill[ch], where=m)
        labels[y0 : y1 + 1, x0 : x1 + 1][m] = len(drawn) + 1
        drawn.append(area)
    visible = np.bincount(labels.ravel(), minlength=len(drawn) + 1)[1:]
    keep = np.flatnonzero((visible >= min_area) & (visible >= 0.1 * np.asarray(drawn))) + 1
    if keep.size == 0:  # practically never: everything tiny; try another scene from the same stream
        return source_image(rng, size)
    # Mild sensor noise (uniform, std 0.004-0.02: a Gaussian draw costs 4x more here).
    canvas += (rng.random(canvas.shape, dtype=np.float32) - 0.5) * np.float32(rng.uniform(0.014, 0.07))
    return to_rgb_uint8(canvas), labels[None] == keep[:, None, None]


# ----------------------------------------------------------------------------- sites


@dataclass(frozen=True)
class Site:
    """How one hospital's endoscopy equipment renders a scene (values are per-site means;
    every image jitters them slightly).

    Attributes:
        name: ``"A"``..``"D"``.
        gains: per-channel RGB multipliers (colour cast / white balance).
        brightness: overall multiplier before the gamma curve.
        gamma: exponent applied to ``[0, 1]`` intensities (> 1 darkens mid-tones).
        noise: sensor noise standard deviation at full scale (signal-dependent).
        res_scale: sensor resolution relative to the output size (< 1: upsampled).
        blur: optics blur, Gaussian sigma in output pixels.
        jpeg_quality: JPEG quality of the site's video export, ``None`` for lossless.
        fov_radius: radius of the circular field of view, as a fraction of the image size.
        description: the equipment in words.
    """

    name: str
    gains: tuple[float, float, float]
    brightness: float
    gamma: float
    noise: float
    res_scale: float
    blur: float
    jpeg_quality: int | None
    fov_radius: float
    description: str


SITES: dict[str, Site] = {
    "A": Site("A", (1.0, 1.0, 1.0), 1.0, 1.0, 0.012, 1.0, 0.7, None, 0.62,
              "reference: neutral white balance, clean HD sensor, lossless export"),
    "B": Site("B", (1.06, 1.0, 0.88), 1.04, 0.88, 0.015, 1.0, 1.0, 80, 0.70,
              "older videoscope: warm cast, brighter, softer optics, JPEG export"),
    "C": Site("C", (0.94, 1.02, 1.08), 0.97, 1.0, 0.010, 0.5, 0.6, None, 0.58,
              "SD processor: half resolution upsampled, cool cast"),
    "D": Site("D", (1.04, 0.93, 1.03), 0.9, 1.15, 0.035, 0.75, 1.2, 65, 0.66,
              "dim light source: darker, noisy sensor, magenta cast, strong JPEG"),
}  # fmt: skip


def _site(site: str | Site) -> Site:
    if isinstance(site, Site):
        return site
    if site not in SITES:
        raise ValueError(f"unknown site {site!r}; expected one of {', '.join(SITES)}")
    return SITES[site]


# ----------------------------------------------------------------------------- target domain


def _smoothstep(t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _add_spot(
    spec: np.ndarray, x: float, y: float, sigma: float, aspect: float, angle: float, peak: float
) -> None:
    """Add one elliptical Gaussian highlight to the ``H x W`` map ``spec`` (in place, local window)."""
    h, w = spec.shape
    r = int(np.ceil(3 * sigma * aspect)) + 1
    x0, x1 = max(0, int(x) - r), min(w, int(x) + r + 1)
    y0, y1 = max(0, int(y) - r), min(h, int(y) + r + 1)
    if x0 >= x1 or y0 >= y1:
        return
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    dx, dy = xx - x, yy - y
    c, s = np.cos(angle), np.sin(angle)
    u, v = (c * dx + s * dy) / (sigma * aspect), (-s * dx + c * dy) / sigma
    spec[y0:y1, x0:x1] += peak * np.exp(-0.5 * (u * u + v * v))


@dataclass
class _Lesion:
    x: float
    y: float
    radius: float  # radius before lobulation and elongation, px
    extent: float  # bound on the distance from the centre to the outline, px


def _place_lesion(rng, size, cx, cy, r_fov, radius, bound, others, lumen) -> _Lesion | None:
    """A centre for a lesion of outline radius at most ``bound * radius``, fully inside the
    field of view, at most slightly cut by the image border, apart from ``others`` and the lumen."""
    for _ in range(30):
        extent = bound * radius
        limit = min(r_fov - extent - 2, 0.5 * size - 0.85 * extent)
        if limit <= 0:
            radius *= 0.9
            continue
        ang, dist = rng.uniform(0, 2 * np.pi), limit * np.sqrt(rng.random())
        x, y = cx + dist * np.cos(ang), cy + dist * np.sin(ang)
        if abs(x - cx) > limit + 0.15 * extent or abs(y - cy) > limit + 0.15 * extent:
            continue
        if any(np.hypot(x - o.x, y - o.y) < extent + o.extent for o in others):
            continue
        if lumen is not None and np.hypot(x - lumen[0], y - lumen[1]) < 1.5 * lumen[2] + radius:
            continue
        return _Lesion(float(x), float(y), radius, extent)
    return None


def _draw_lesion(rng, les, a, p, elong, tint_map, vessels, spec) -> np.ndarray:
    """Paint one polyp into ``tint_map`` (``3 x H x W``), ``vessels`` and ``spec`` (``H x W``) in
    place, within a window around it; return its ``H x W`` bool mask (outline at ``d = 1``)."""
    size = vessels.shape[0]
    half = int(1.7 * les.extent) + 3
    x0, x1 = max(0, int(les.x) - half), min(size, int(les.x) + half + 1)
    y0, y1 = max(0, int(les.y) - half), min(size, int(les.y) + half + 1)
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    dx, dy = xx - np.float32(les.x), yy - np.float32(les.y)
    rot = rng.uniform(0, np.pi)
    cr, sr = np.float32(np.cos(rot)), np.float32(np.sin(rot))
    u = cr * dx + sr * dy
    v = (cr * dy - sr * dx) / np.float32(elong)
    d = np.hypot(u, v) / (np.float32(les.radius) * eval_profile(a, p, np.arctan2(v, u)))
    w = rng.uniform(0.08, 0.3)  # soft edge half-width, fraction of the radius
    alpha = _smoothstep((1 + w - d) / (2 * w))
    dome = np.sqrt(np.clip(1 - d * d, 0, 1))
    light = rng.uniform(0, 2 * np.pi)
    side = np.clip((dx * np.float32(np.cos(light)) + dy * np.float32(np.sin(light))) / les.radius, -1.2, 1.2)
    tint = (1 + rng.normal(0, 0.04, 3) + rng.uniform(-0.06, 0.08)).astype(np.float32)
    texture = 1 + rng.uniform(0.02, 0.06) * smooth_noise(
        rng, y1 - y0, x1 - x0, rng.uniform(20, 40) * 2 * half / size, 2
    )
    shade = (1 + rng.uniform(0.06, 0.2) * side * alpha + rng.uniform(0.0, 0.08) * dome) * texture**alpha
    rim = rng.uniform(0.06, 0.18) * np.exp(-(((d - 1 - 0.5 * w) / 0.15) ** 2)) * np.clip(-side, 0, 1)
    shade *= 1 - rim
    for ch in range(3):
        tint_map[ch, y0:y1, x0:x1] *= (1 + alpha * (tint[ch] - 1)) * shade
    vessels[y0:y1, x0:x1] *= 1 - rng.uniform(0.3, 0.9) * alpha
    for _ in range(int(rng.integers(0, 4))):  # highlights near the lit top of the dome
        sx, sy = les.radius * (0.35 * np.array([np.cos(light), np.sin(light)]) + rng.normal(0, 0.2, 2))
        sigma, aspect, angle = rng.uniform(0.8, 3.0), rng.uniform(1, 2.5), rng.uniform(0, np.pi)
        _add_spot(spec, les.x + sx, les.y + sy, sigma, aspect, angle, rng.uniform(0.8, 2.0))
    mask = np.zeros((size, size), bool)
    mask[y0:y1, x0:x1] = d <= 1.0
    return mask


def _colon_scene(rng: np.random.Generator, size: int, fov_radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Scene radiance, planar ``3 x H x W`` float32 (before the camera), and polyp masks ``K x H x W``."""
    yy, xx = pixel_grid(size, size)
    cx, cy = (size - 1) / 2 + rng.normal(0, 0.01 * size, 2)
    r_fov = fov_radius * size * rng.uniform(0.97, 1.03)
    rad = np.hypot(xx - np.float32(cx), yy - np.float32(cy))
    red = rng.uniform(0.82, 0.97)
    green = red * rng.uniform(0.42, 0.6)
    base = np.array([red, green, green * rng.uniform(0.72, 1.0)], np.float32)

    # Geometry: looking down the lumen (dark hole, ring folds denser with distance) or at the wall.
    warp = smooth_noise(rng, size, size, 3)
    lumen = None
    if rng.random() < 0.75:
        ang, dist = rng.uniform(0, 2 * np.pi), rng.uniform(0.0, 0.45) * size
        lumen = (cx + dist * np.cos(ang), cy + dist * np.sin(ang), rng.uniform(0.05, 0.14) * size)
        dl = np.hypot(xx - np.float32(lumen[0]), yy - np.float32(lumen[1])) * (1 + 0.15 * warp)
        depth = 1 - np.exp(-((dl / np.float32(2.2 * lumen[2])) ** 2))
        phase = np.log(np.maximum(dl, 1.0) / np.float32(lumen[2])) / np.float32(np.log(rng.uniform(1.3, 1.8)))
        phase += 0.25 * smooth_noise(rng, size, size, 2)
    else:
        ang = rng.uniform(0, 2 * np.pi)
        u = xx * np.float32(np.cos(ang)) + yy * np.float32(np.sin(ang))
        u = (u - u.min()) / np.float32(np.ptp(u))
        depth = 0.5 + 0.5 * u
        phase = u * np.float32(rng.uniform(3, 7)) + 0.4 * warp
    illum = (0.1 + 0.9 * depth) * (1 + 0.08 * smooth_noise(rng, size, size, 2))
    # Folds: a gentle lit slope, then a steeper shadowed crease; crescents rather than full rings.
    f = np.float32(2 * np.pi) * phase
    fold_amp = rng.uniform(0.06, 0.16) * depth * np.clip(0.6 + 0.5 * smooth_noise(rng, size, size, 3), 0, 1)
    folds = 1 + fold_amp * (np.sin(f) + 0.35 * np.sin(2 * f))
    shade = illum * folds * (1 + rng.uniform(0.02, 0.05) * smooth_noise(rng, size, size, 20, octaves=3))

    vessels = rng.uniform(0.15, 0.35) * vessel_map(rng, size, size, int(rng.integers(2, 7)), 0.4 * size)

    # Polyps: soft-edged domes, slightly different tint and texture, a few highlights.
    tint_map = np.ones((3, size, size), np.float32)
    spec = np.zeros((size, size), np.float32)
    masks, lesions = [], []
    fracs = [float(np.exp(rng.uniform(np.log(0.03), np.log(0.25))))]
    if rng.random() < 0.2:
        fracs.append(float(rng.uniform(0.03, 0.08)))
    for frac in fracs:  # fraction of the image area, round to lobulated, a little elongated
        a, p = radial_profile(rng, int(rng.integers(2, 6)), rng.uniform(0.0, 0.35), min_ratio=0.6)
        elong = rng.uniform(0.7, 1.0)
        radius = float(np.sqrt(frac * size * size / (np.pi * elong)))
        les = _place_lesion(rng, size, cx, cy, r_fov, radius, 1 + float(np.abs(a).sum()), lesions, lumen)
        if les is not None:
            lesions.append(les)
            masks.append(_draw_lesion(rng, les, a, p, elong, tint_map, vessels, spec))

    # Specular highlights on the wet mucosa: small clusters, brighter where it is lit.
    for _ in range(int(rng.integers(2, 9))):
        ang, dist = rng.uniform(0, 2 * np.pi), r_fov * np.sqrt(rng.random())
        x, y = cx + dist * np.cos(ang), cy + dist * np.sin(ang)
        lit = float(illum[int(np.clip(y, 0, size - 1)), int(np.clip(x, 0, size - 1))])
        if lit < 0.3:  # no highlight from the far, dark lumen
            continue
        spread = rng.uniform(1.0, 8.0)
        for _ in range(int(rng.integers(1, 7))):
            sx, sy = rng.normal(0, spread, 2)
            sigma, aspect, angle = rng.uniform(0.4, 2.0), rng.uniform(1, 2.5), rng.uniform(0, np.pi)
            _add_spot(spec, x + sx, y + sy, sigma, aspect, angle, rng.uniform(1.0, 2.5) * lit)

    vessel_colour = np.array([0.35, 0.75, 0.6], np.float32)[:, None, None]
    scene = (base[:, None, None] * shade) * tint_map * (1 - vessels * vessel_colour)
    scene = 1 - (1 - np.clip(scene, 0, 1)) * (1 - np.clip(spec, 0, 1))
    vignette = 1 / (1 + (rad / np.float32(rng.uniform(1.1, 1.6) * r_fov)) ** 2) ** 2
    fov = np.clip(np.float32(r_fov + 0.5) - rad, 0, 1)
    scene *= vignette * fov
    # The processor's automatic exposure brings the mean brightness inside the view to a set level.
    level = float((scene.mean(axis=0) * fov).sum() / max(float(fov.sum()), 1.0))
    scene *= np.float32(np.clip(rng.uniform(0.42, 0.52) / max(level, 1e-3), 0.8, 1.8))
    if not masks:  # practically never; fall back to another scene from the same stream
        return _colon_scene(rng, size, fov_radius)
    return scene, np.stack(masks) & (rad < r_fov - 1.0)


def _camera(rng: np.random.Generator, scene: np.ndarray, site: Site) -> np.ndarray:
    """Render planar scene radiance through a site's optics, sensor and export: ``H x W x 3`` uint8."""
    size = scene.shape[1]
    sigma = float(np.hypot(rng.uniform(0.4, 1.2), site.blur * rng.uniform(0.8, 1.2)))
    img = gaussian_filter(scene, (0, sigma, sigma), truncate=3.0)
    sensor = round(size * site.res_scale)
    if sensor < size:
        img = resize_float(img, sensor, sensor, Image.BOX)
    gains = np.asarray(site.gains, np.float32) * (1 + rng.normal(0, 0.02, 3)).astype(np.float32)
    gains *= np.float32(site.brightness * rng.uniform(0.95, 1.05))
    img = np.clip(img * gains[:, None, None], 0, 1) ** np.float32(site.gamma)
    noise = np.float32(site.noise * rng.uniform(0.8, 1.2))
    img += rng.standard_normal(img.shape, dtype=np.float32) * noise * np.sqrt(0.3 + 0.7 * img)
    if sensor < size:
        img = resize_float(img, size, size, Image.BILINEAR)
    out = to_rgb_uint8(img)
    if site.jpeg_quality is not None:
        buf = io.BytesIO()
        Image.fromarray(out).save(buf, format="JPEG", quality=site.jpeg_quality)
        out = np.array(Image.open(buf).convert("RGB"))
    return out


def target_image(
    rng: np.random.Generator, site: str | Site = "A", size: int = 256
) -> tuple[np.ndarray, np.ndarray]:
    """One colonoscopy-like frame of ``site`` (``"A"``..``"D"`` or a :class:`Site`).

    The scene (pink mucosa with folds, vessels, lumen, illumination fall-off, specular
    highlights, vignetting and a circular field of view; 1, sometimes 2, soft-edged polyps
    covering about 3-25% of the image) is drawn from the same distribution at every site,
    apart from the site's field-of-view radius; the site's camera then sets colour cast,
    brightness / gamma, noise, resolution, blur and JPEG artefacts.

    Returns:
        image: ``size x size x 3`` uint8 RGB.
        masks: ``K x size x size`` bool, ``K`` in ``{1, 2}``, one per polyp (disjoint).
    """
    spec = _site(site)
    scene, masks = _colon_scene(rng, size, spec.fov_radius)
    return _camera(rng, scene, spec), masks
