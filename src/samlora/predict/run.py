"""``samlora predict`` over an image, a folder or a glob: prompts in, overlays + masks + COCO JSON out.

Outputs under the output folder, named by each image's path relative to the
input folder (``a/x.png`` -> ``overlays/a/x.png``; when two images differ only
by their extension the extension stays in the name, ``a/x.jpg.png``):
``overlays/<name>.png`` (masks in distinct colours, optionally boxes and labels
with scores), ``masks/<name>_<k>.png`` (one 0/255 PNG per instance),
``predictions.json`` (COCO results with RLE masks, loadable with
``pycocotools`` ``loadRes``), ``images.json`` (the COCO ``images`` and
``categories`` used, and the skipped files), and with ``compare``
``panels/<name>.png`` (adapter | vanilla [| ground truth]). Everything is at
the original resolution of each image. Prompts are validated before anything is
written; an unreadable image is reported and skipped, the rest goes on.
"""

from __future__ import annotations

import glob
import json
import logging
import os
import time
from collections import Counter, deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from PIL import Image

from samlora.data.images import DEFAULT_MAX_PIXELS, IMAGE_EXTENSIONS, load_image
from samlora.errors import DataError, PromptError, SamloraError
from samlora.evaluate.draw import draw_labels, draw_prompts, overlay, panel
from samlora.tasks.concept.scoring import rle, xywh
from samlora.tasks.postprocess import PostProcess

from .predictor import VANILLA, Prediction, Predictor
from .prompts import ImagePrompts, prompt_problems, prompts_for, read_prompt_file

log = logging.getLogger(__name__)
WRITERS = 4
"""Threads writing overlays, mask PNGs and RLEs while the next images are encoded."""
__all__ = ["ImagePrompts", "PredictSummary", "list_images", "output_names", "run_predict"]


@dataclass
class PredictSummary:
    """What a predict run did."""

    images: int
    detections: int
    seconds: float
    skipped: list[tuple[str, str]]
    unmatched: list[str] = field(default_factory=list)
    """Entries of the prompts file that matched no image of the source (listed, never silently unused)."""

    @property
    def images_per_s(self) -> float:
        return self.images / max(self.seconds, 1e-9)


def list_images(source: str) -> list[Path]:
    """An image file, every image in a folder (recursively), or the files a glob matches, sorted."""
    path = Path(source)
    if path.is_file():
        return [path]
    if path.is_dir():
        found = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
        if not found:
            raise SamloraError(
                f"no images in folder '{source}' (looked for {', '.join(IMAGE_EXTENSIONS)}); "
                "pass a folder that holds images"
            )
        return found
    matches = sorted(Path(p) for p in glob.glob(source, recursive=True) if Path(p).is_file())
    if not matches:
        raise SamloraError(
            f"no images found at '{source}'; pass an image file, a folder or a glob like 'photos/*.jpg'"
        )
    return matches


def output_names(images: list[Path], source: str) -> list[str]:
    """Output name of each image: its path relative to the input folder (or the glob's common folder)."""
    root = Path(source)
    if not root.is_dir():
        root = Path(os.path.commonpath([str(p.parent.absolute()) for p in images]))
    rel = [p.absolute().relative_to(root.absolute()) if root.is_dir() else Path(p.name) for p in images]
    stems = [r.with_suffix("").as_posix() for r in rel]
    counts = Counter(stems)
    return [s if counts[s] == 1 else r.as_posix() for s, r in zip(stems, rel)]


def _run_one(
    predictor: Predictor, prompts: ImagePrompts, texts: list[str] | None, post: PostProcess
) -> Prediction:
    """Decode one image's prompts from the selected image embedding."""
    if texts:
        return predictor.predict(text=texts, post=post)
    return predictor.predict(
        boxes=prompts.boxes or None,
        points=prompts.points or None,
        point_labels=prompts.labels or None,
        post=post,
    )


def _inside(prompts: ImagePrompts, height: int, width: int, path: Path) -> ImagePrompts:
    """``prompts`` without the boxes (and their point sets) that lie entirely outside the image."""
    keep = [b[0] < width and b[1] < height and b[2] > 0 and b[3] > 0 for b in prompts.boxes]
    if all(keep):
        return prompts
    for box, ok in zip(prompts.boxes, keep):
        if not ok:
            log.warning("%s: box %s lies outside the %dx%d image; skipped", path, box, width, height)
    pick = lambda values: [v for v, ok in zip(values, keep) if ok] if values else values  # noqa: E731
    several = prompts.point_sets() > 1 or (prompts.points and len(prompts.boxes) > 1)
    return replace(
        prompts,
        boxes=pick(prompts.boxes),
        points=pick(prompts.points) if several else (prompts.points if any(keep) else []),
        labels=pick(prompts.labels) if several else (prompts.labels if any(keep) else []),
        category_ids=pick(prompts.category_ids),
    )


def run_predict(
    predictor: Predictor,
    source: str,
    output: str | Path,
    prompts: ImagePrompts,
    texts: list[str] | None = None,
    prompt_file: str | None = None,
    post: PostProcess | None = None,
    compare: bool = False,
    category_ids: dict[str, int] | None = None,
    progress: bool = True,
    batch_size: int = 1,
    draw_boxes: bool = True,
    max_pixels: int | None = None,
) -> PredictSummary:
    """Predict every image of ``source`` and write overlays, mask PNGs and COCO results.

    ``category_ids`` maps text prompts to category ids (default 1..N). Box and
    point prompts get category 1 (``object``), or their annotation's category
    with a COCO prompts file. Raises :class:`SamloraError` before writing
    anything when the prompts cannot work, and after the run when no image
    could be predicted. An ``output`` ending in an image extension (``result.png``)
    writes that one overlay and ``result.json`` beside it (see :func:`_predict_to_file`). An image
    over ``max_pixels`` (default :data:`~samlora.data.images.DEFAULT_MAX_PIXELS`; 0: no limit) is
    skipped with the reason, from its header alone.
    """
    from tqdm.auto import tqdm

    if Path(output).suffix.lower() in IMAGE_EXTENSIONS:
        return _predict_to_file(
            predictor, source, Path(output), prompts, texts=texts, prompt_file=prompt_file, post=post,
            compare=compare, category_ids=category_ids, progress=progress, batch_size=batch_size,
            draw_boxes=draw_boxes, max_pixels=max_pixels,
        )  # fmt: skip

    post = post or PostProcess()
    spec = predictor.loaded.spec
    if texts and spec.task != "concept":
        raise PromptError(
            f"text prompts need a concept model (SAM 3); {spec.name} takes "
            f"{', '.join(predictor.prompt_types)} prompts"
        )
    if not texts and spec.task == "concept":
        raise PromptError(f"{spec.name} is a concept model: pass text prompts with --prompt NAME [NAME ...]")
    if texts and (prompts or prompt_file):
        raise PromptError("text prompts (--prompt) cannot be combined with --box/--point/--prompts")
    problems = prompt_problems(prompts)
    if problems:
        raise PromptError("; ".join(problems))
    files, file_categories = read_prompt_file(prompt_file) if prompt_file else ({}, {})
    if not texts and not prompts and not files:
        raise PromptError("no prompt given: pass --box, --point, --prompt or a --prompts file")
    images = list_images(source)
    names = output_names(images, source)
    cats = dict(category_ids or ({t: i + 1 for i, t in enumerate(texts)} if texts else {}))
    categories = {cid: name for name, cid in cats.items()} if texts else (file_categories or {1: "object"})
    used = {p.image_id for p in files.values() if p.image_id is not None}
    fresh = iter(range(max(used, default=0) + 1, 1 << 62))  # ids for images the file does not list
    out = Path(output)
    for sub in ("overlays", "masks"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    results, image_table, skipped = [], [], []
    started, detections = time.perf_counter(), 0
    step = max(batch_size, 1)
    bar = tqdm(total=len(images), desc="predict", disable=not progress, dynamic_ncols=True)
    writers, pending = (
        ThreadPoolExecutor(max_workers=WRITERS),
        deque(),
    )  # PNGs and RLEs while the next chunk encodes

    def collect(limit: int) -> int:
        found = 0
        while len(pending) > limit:
            count, rows = pending.popleft().result()
            results.extend(rows)
            found += count
        return found

    for first in range(0, len(images), step):
        chunk = []  # (path, name, pixels, prompts)
        for path, name in zip(images[first : first + step], names[first : first + step]):
            try:
                pixels = load_image(path, DEFAULT_MAX_PIXELS if max_pixels is None else max_pixels)
            except DataError as err:
                log.warning("skipping %s: %s", path, err)
                skipped.append((str(path), str(err)))
                continue
            own = prompts_for(path, files, prompts)
            if not texts:
                own = _inside(own, pixels.shape[0], pixels.shape[1], path)
                if not own:
                    why = "no prompt for this image (not in the prompts file, or every box outside it)"
                    skipped.append((str(path), why))
                    continue
            chunk.append((path, name, pixels, own))
        if chunk:
            predictor.set_images([c[2] for c in chunk])  # one encoder pass for the whole chunk
        done = []
        for i, (path, name, pixels, own) in enumerate(chunk):
            predictor.select(i)
            try:
                pred = _run_one(predictor, own, texts, post)
            except PromptError as err:
                log.warning("skipping %s: %s", path, err)
                skipped.append((str(path), str(err)))
                continue
            image_id = own.image_id if own.image_id is not None else next(fresh)
            image_table.append(
                {"id": image_id, "file_name": str(path), "height": pixels.shape[0], "width": pixels.shape[1]}
            )
            ids = [cats[lab] for lab in pred.labels] if pred.labels is not None else [
                own.category_ids[k] if own.category_ids else 1 for k in pred.prompt_index.tolist()
            ]  # fmt: skip
            pending.append(writers.submit(_write, out, name, pixels, pred, image_id, ids, draw_boxes, own))
            detections += collect(2 * WRITERS)  # a bounded queue: predictions wait in memory briefly
            done.append((i, name, pixels, own, pred))
        if compare:  # after the chunk: vanilla encodes the chunk once, in one pass
            for i, name, pixels, own, pred in done:
                _compare(predictor, out, i, name, pixels, own, texts, post, pred)
        bar.update(len(images[first : first + step]))
    detections += collect(0)
    writers.shutdown()
    bar.close()
    (out / "predictions.json").write_text(json.dumps(results) + "\n")
    table = {
        "images": image_table,
        "categories": [{"id": cid, "name": name} for cid, name in sorted(categories.items())],
        "skipped": skipped,
    }
    matched = {id(prompts_for(path, files, None)) for path in images}
    unmatched = [key for key, entry in files.items() if id(entry) not in matched]
    table["unmatched_prompts"] = unmatched
    (out / "images.json").write_text(json.dumps(table, indent=1) + "\n")
    summary = PredictSummary(len(image_table), detections, time.perf_counter() - started, skipped, unmatched)
    if not image_table:
        reasons = "\n".join(f"  {p}: {why}" for p, why in skipped[:10])
        raise SamloraError(f"no image could be predicted; all {len(skipped)} skipped:\n{reasons}")
    return summary


def _write(
    out: Path,
    name: str,
    pixels: np.ndarray,
    pred: Prediction,
    image_id: int,
    category_ids: list[int],
    draw_boxes: bool,
    prompts: ImagePrompts | None = None,
) -> tuple[int, list[dict]]:
    """Write one image's overlay and mask PNGs (empty masks are no detection); returns the count and
    its COCO results. Runs in a writer thread (Pillow's PNG encoder and pycocotools release the GIL).

    Text prompts: each detection's box and label in its mask's colour. Box and point prompts: the
    user's prompts drawn apart from the prediction (dashed box, +/- clicks), the label at the mask.
    """
    results: list[dict] = []
    keep = [k for k in range(len(pred)) if pred.masks[k].any()]
    masks, scores = pred.masks[keep], pred.scores[keep]
    labels = [f"{pred.labels[k] if pred.labels else 'object'} {pred.scores[k]:.2f}" for k in keep]
    index = pred.prompt_index[keep] if pred.prompt_index is not None else None
    picture = _drawn(
        pixels, masks, pred.boxes[keep], labels, prompts if draw_boxes else None, draw_boxes, index
    )
    (out / "overlays" / name).parent.mkdir(parents=True, exist_ok=True)
    (out / "masks" / name).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(picture).save(out / "overlays" / f"{name}.png")
    for j, (k, mask) in enumerate(zip(keep, masks)):
        Image.fromarray(mask.astype(np.uint8) * 255).save(out / "masks" / f"{name}_{j}.png")
        results.append(
            {
                "image_id": image_id,
                "category_id": int(category_ids[k]),
                "segmentation": rle(mask),
                "bbox": xywh(mask),
                "score": float(scores[j]),
            }
        )
    return len(keep), results


def _compare(
    predictor: Predictor,
    out: Path,
    index: int,
    name: str,
    pixels: np.ndarray,
    prompts: ImagePrompts,
    texts,
    post,
    pred,
) -> None:
    """Write the adapter | vanilla (| ground truth) panel of image ``index`` of the current chunk."""
    active = predictor.active
    predictor.use(VANILLA)
    try:
        predictor.select(index)
        base = _run_one(predictor, prompts, texts, post)
    finally:
        predictor.use(active)
    tiles = [
        (f"{active}", _drawn(pixels, pred.masks, prompts=prompts)),
        ("vanilla", _drawn(pixels, base.masks, prompts=prompts)),
    ]
    if prompts.annotations:
        from pycocotools import mask as mask_utils

        h, w = pixels.shape[:2]
        gts = []
        for ann in prompts.annotations:
            seg = ann.get("segmentation")
            if seg:
                rles = mask_utils.frPyObjects(seg, h, w) if isinstance(seg, list) else seg
                gts.append(
                    mask_utils.decode(mask_utils.merge(rles) if isinstance(rles, list) else rles).astype(bool)
                )
        tiles.append(("ground truth", overlay(pixels, gts)))
    panel(tiles, path=out / "panels" / f"{name}.png")


def _predict_to_file(
    predictor: Predictor, source: str, target: Path, prompts: ImagePrompts, **options
) -> PredictSummary:
    """``--output result.png``: predict the one image of ``source`` and write its overlay to ``target`` and
    ``result.json`` beside it: ``{"images", "categories", "predictions"}`` (the COCO results, RLE masks)."""
    import shutil
    import tempfile

    if options.get("compare"):
        raise SamloraError(f"--compare writes panels into a folder; pass a folder as --output, not {target}")
    images = list_images(source)
    if len(images) != 1:
        raise SamloraError(
            f"--output {target} is one image file, but {source} holds {len(images)} images; pass a folder as --output"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        summary = run_predict(predictor, source, work, prompts, **options)
        (name,) = output_names(images, source)
        Image.open(work / "overlays" / f"{name}.png").convert("RGB").save(target)
        table = json.loads((work / "images.json").read_text())
        table["predictions"] = json.loads((work / "predictions.json").read_text())
        target.with_suffix(".json").write_text(json.dumps(table, indent=1) + "\n")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return summary


def _drawn(
    pixels: np.ndarray,
    masks: np.ndarray,
    boxes: np.ndarray | None = None,
    labels: list[str] | None = None,
    prompts: ImagePrompts | None = None,
    draw_boxes: bool = False,
    prompt_index: np.ndarray | None = None,
) -> np.ndarray:
    """Masks with labels; for box and point prompts, the user's prompts drawn apart from them.

    Text prompts: each detection's box in its mask's colour, its label at the box. Box and point
    prompts: the user's dashed box / +- clicks (never the predicted mask's box), each label above
    the box it answers (``prompt_index``), or above its mask for point prompts.
    """
    if prompts is None or not prompts:
        return overlay(pixels, masks, boxes=boxes if draw_boxes else None, labels=labels)
    picture = draw_prompts(
        overlay(pixels, masks), boxes=prompts.boxes or None, points=prompts.points or None,
        point_labels=prompts.labels or None, numbered=False,
    )  # fmt: skip
    if not labels or boxes is None:
        return picture
    anchors = [[float(b[0]), float(b[1])] for b in np.asarray(boxes, dtype=float)]
    if prompts.boxes and prompt_index is not None:
        anchors = [[float(v) for v in prompts.boxes[int(j)][:2]] for j in prompt_index]
    return draw_labels(picture, anchors, labels)
