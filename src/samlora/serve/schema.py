"""What ``POST /predict`` takes and answers, and the check of a request against its image.

Coordinates are pixels of the original image: boxes ``XYXY``, points ``XY``. Prompts use the
schema of ``samlora predict --prompts`` files (``boxes``, ``points`` ``P x 2`` or ``N x P x 2``,
``labels``), plus ``text`` for concept models (SAM 3). No field names a file on the server: the
image travels in the request (multipart upload or base64).
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from samlora.errors import SamloraError
from samlora.predict.prompts import ImagePrompts, prompt_problems
from samlora.tasks.postprocess import PostProcess


class RequestError(SamloraError):
    """A request the server refuses; ``status`` is its HTTP status (4xx)."""

    def __init__(self, message: str, status: int = 422):
        self.status = status
        super().__init__(message)


class Prompts(BaseModel):
    """One image's prompts: a ``--prompts`` file entry, plus text prompts for concept models."""

    model_config = ConfigDict(extra="forbid")
    boxes: list[list[float]] = Field(
        default_factory=list, description="N x 4 XYXY pixels: one object per box."
    )
    points: list[Any] = Field(
        default_factory=list,
        description="P x 2 XY pixels (one object) or N x P x 2 (N objects, the same number of points each).",
    )
    labels: list[Any] = Field(
        default_factory=list, description="Shape of points without the last axis: 1 foreground, 0 background."
    )
    text: list[str] = Field(
        default_factory=list, description="Concept prompts (SAM 3): every instance of each."
    )


class PostOptions(BaseModel):
    """Post-processing, as ``samlora predict``'s flags of the same names."""

    model_config = ConfigDict(extra="forbid")
    threshold: float | None = Field(
        None,
        description="Minimum score: detection score for text prompts (default 0.5); predicted IoU for "
        "box/point prompts (default: none, every prompted object is kept).",
    )
    nms_iou: float = Field(0.5, gt=0, le=1, description="NMS IoU threshold for text prompts (1 disables).")
    nms_kind: Literal["mask", "box"] = "mask"
    top_k: int = Field(100, ge=1, le=1000, description="At most this many instances per text prompt.")
    min_area: int = Field(0, ge=0, description="Drop instances smaller than this many pixels.")
    fill_holes: bool = False
    merge: bool = Field(False, description="Merge overlapping segments of one text prompt.")

    def settings(self, text: bool) -> PostProcess:
        """The :class:`PostProcess` these options mean for text (``text=True``) or box/point prompts."""
        threshold = self.threshold if self.threshold is not None else (0.5 if text else -math.inf)
        return PostProcess(
            threshold=threshold, nms_iou=self.nms_iou, nms_kind=self.nms_kind, top_k=self.top_k,
            min_area=self.min_area, fill_holes=self.fill_holes, merge=self.merge,
        )  # fmt: skip


class PredictRequest(BaseModel):
    """The JSON body of ``POST /predict`` (in a multipart upload: the ``request`` field, without ``image``)."""

    model_config = ConfigDict(extra="forbid")
    image: str | None = Field(
        None, description="The image file's bytes in base64 (or a data: URL); omit it in a multipart upload."
    )
    prompts: Prompts = Field(default_factory=Prompts)
    adapter: str | None = Field(None, description="Adapter name, or 'vanilla' (default: the first adapter).")
    compare: bool = Field(
        False, description="Also answer with vanilla (adapters disabled), for adapter | vanilla."
    )
    post: PostOptions = Field(default_factory=PostOptions)


class Instance(BaseModel):
    """One predicted object."""

    segmentation: dict = Field(
        description="COCO compressed RLE at the image's original size: {size: [H, W], counts}."
    )
    bbox: list[float] = Field(description="XYXY pixels of the original image (x2, y2 exclusive).")
    score: float = Field(description="Predicted IoU (box/point prompts) or detection score (text).")
    prompt_index: int = Field(description="Index of the box / point set / text prompt this instance answers.")
    label: str = Field(description="The text prompt, or 'object' for box/point prompts.")
    area: int


class Result(BaseModel):
    """The instances one model (adapter or vanilla) found."""

    adapter: str
    cached: bool = Field(description="The image embedding came from the cache (only the prompt decoder ran).")
    instances: list[Instance]


class ImageInfo(BaseModel):
    width: int
    height: int
    sha256: str


class PredictResponse(BaseModel):
    """``results[0]`` answers the adapter asked for; with ``compare``, ``results[1]`` is vanilla."""

    image: ImageInfo
    results: list[Result]


def check_prompts(prompts: Prompts, height: int, width: int, max_prompts: int, task: str) -> ImagePrompts:
    """The prompts as :class:`ImagePrompts`, or a :class:`RequestError` saying every problem at once.

    Refused: no prompt, text with boxes/points, text to a promptable model and boxes/points to a
    concept model, more than ``max_prompts`` boxes, point sets, points per set or texts, and any
    coordinate outside the ``width x height`` image.
    """
    geometric = ImagePrompts(boxes=prompts.boxes, points=prompts.points, labels=prompts.labels)
    if prompts.text and geometric:
        raise RequestError("text prompts cannot be combined with boxes or points; send one kind per request")
    if prompts.text:
        if task != "concept":
            raise RequestError(
                "text prompts need a concept model (SAM 3) with a text encoder; this server's model takes "
                "boxes and points"
            )
        blank = [t for t in prompts.text if not t.strip()]
        if blank or len(prompts.text) > max_prompts:
            raise RequestError(f"give 1 to {max_prompts} non-empty text prompts, got {prompts.text!r}")
        return geometric
    if not geometric:
        raise RequestError(
            'no prompt given: send prompts.boxes, prompts.points or prompts.text, e.g. {"boxes": [[10, 20, 80, 90]]}'
        )
    if task == "concept":
        raise RequestError(
            "this concept model (SAM 3) takes text prompts (prompts.text), not boxes or points"
        )
    problems = prompt_problems(geometric)
    if not problems:
        problems = _too_many(geometric, max_prompts) + _outside(geometric, height, width)
    if problems:
        raise RequestError("; ".join(problems))
    return geometric


def _point_sets(prompts: ImagePrompts) -> np.ndarray:
    """The points as ``N x P x 2`` (``0 x 0 x 2`` without points); shapes already checked."""
    if not prompts.points:
        return np.zeros((0, 0, 2))
    points = np.asarray(prompts.points, dtype=np.float64)
    return points[None] if points.ndim == 2 else points


def _too_many(prompts: ImagePrompts, limit: int) -> list[str]:
    sets = _point_sets(prompts)
    counts = {
        "boxes": len(prompts.boxes),
        "point sets": sets.shape[0],
        "points for one object": sets.shape[1],
    }
    return [
        f"{n} {what}; at most {limit} per request (--max-prompts)" for what, n in counts.items() if n > limit
    ]


def _outside(prompts: ImagePrompts, height: int, width: int) -> list[str]:
    """Boxes and points that reach outside the image (``0 <= x <= width``, ``0 <= y <= height``)."""
    inside = lambda x, y: bool(0 <= x <= width and 0 <= y <= height)  # noqa: E731  (False for NaN)
    where = f"the {width} x {height} image; keep x in 0..{width} and y in 0..{height}"
    problems = [
        f"box {box} reaches outside {where}"
        for box in prompts.boxes
        if not (inside(box[0], box[1]) and inside(box[2], box[3]))
    ]
    problems += [
        f"point {[float(v) for v in p]} lies outside {where}"
        for p in _point_sets(prompts).reshape(-1, 2)
        if not inside(*p)
    ]
    return problems
