"""The Python inference API: a Predictor over one base model with any number of adapters.

    >>> p = Predictor("tiny-sam", adapters={"polyp": "runs/polyp/best"})
    >>> p.set_image(image)                       # H x W x 3 uint8; encoded once
    >>> out = p.predict(boxes=[[10, 20, 80, 90]])  # masks at the image's own resolution
    >>> p.use("vanilla")                          # base model, adapters disabled

Boxes are ``XYXY`` and points ``XY`` in pixels of the original image; masks come
back at the original resolution, boxes in the same pixels. The same prompt
mapping and post-processing serve ``samlora eval`` and ``samlora predict``.
"""

from __future__ import annotations

import logging
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import peft
import torch

from samlora.errors import PromptError, SamloraError
from samlora.lora.adapters import adapter_folder, load_adapter, merge_to_base, read_adapter, use_adapter
from samlora.models.device import autocast_for, pick_device
from samlora.models.loading import LoadedModel, load_model
from samlora.models.promptable import Decoded, ImageEmbeddings, decode, encode
from samlora.tasks.postprocess import (
    PostProcess,
    boxes_from_projections,
    fill_holes,
    masks_to_boxes,
    min_area_filter,
)
from samlora.tasks.promptable.segmenter import best_candidate

from .inputs import as_float, as_image, clip_boxes, shrink, to_cpu

log = logging.getLogger(__name__)
VANILLA = "vanilla"
PRECISIONS = ("no", "fp32", "bf16", "fp16")


@dataclass
class Prediction:
    """Instances found for one image.

    Attributes:
        masks: ``K x H x W`` bool at the original resolution.
        scores: ``K`` (predicted IoU for box/point prompts, detection score for text).
        boxes: ``K x 4`` XYXY pixels of the original image.
        labels: ``K`` text prompt of each instance (concept models) or ``None``.
        prompt_index: ``K`` index of the prompt each instance answers (box,
            point set or text); with post-processing some prompts may have none.

    Arrays are numpy, or torch tensors when the image was a torch tensor.
    """

    masks: np.ndarray
    scores: np.ndarray
    boxes: np.ndarray
    labels: list[str] | None = None
    prompt_index: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.masks.shape[0])

    def as_torch(self) -> Prediction:
        """The same prediction with ``masks``, ``scores``, ``boxes`` and ``prompt_index`` as CPU tensors."""
        convert = lambda a: None if a is None else torch.as_tensor(a)  # noqa: E731
        return Prediction(
            convert(self.masks),
            convert(self.scores),
            convert(self.boxes),
            self.labels,
            convert(self.prompt_index),
        )


def resolve_adapter(folder: str | Path) -> Path:
    """An adapter folder, or a training run folder whose ``best/`` holds the adapter."""
    return adapter_folder(folder)


class Predictor:
    """Inference on one base model with zero, one or several adapters, switched by name.

    Args:
        model: hub id, local folder, preset, or an already loaded model.
        adapters: adapter folders (or run folders, whose ``best/`` is used); a
            list names them by folder, a dict by key.
        device: ``auto``, ``cpu``, ``cuda``, ``mps``.
        precision: ``no`` (or ``fp32``: full precision), ``bf16`` or ``fp16`` autocast.
        merge: with exactly one adapter, merge it into the weights (fastest;
            switching adapters or running vanilla is then refused).
        resolution: working resolution: images whose longest side exceeds it
            are shrunk before encoding (0: never). Prompts and outputs stay in
            pixels of the original image.
        backend: run another engine instead of the torch model: an object with
            ``loaded`` (a :class:`LoadedModel` giving family and preprocessing),
            ``name``, ``encode(pixel_values) -> ImageEmbeddings`` and ``decode(...)``
            taking :func:`samlora.models.promptable.decode`'s arguments after the
            model and family (e.g. :class:`samlora.export.runtime.OnnxBackend`).
            Prompts, post-processing and outputs stay the same; no adapters.

    Outputs follow the image: a torch image gives torch tensors (on the CPU),
    anything else numpy arrays.
    """

    def __init__(
        self,
        model: str | LoadedModel | None = None,
        adapters: dict[str, str | Path] | list[str | Path] | str | Path | None = None,
        device: str = "auto",
        precision: str = "no",
        merge: bool = False,
        resolution: int = 0,
        backend: object | None = None,
    ):
        if backend is not None:
            self._init_backend(backend, model, adapters, merge, resolution)
            return
        self.backend = None
        if precision not in PRECISIONS:
            raise SamloraError(f"precision '{precision}' is not one of {', '.join(PRECISIONS)}")
        if isinstance(adapters, (str, Path)):
            adapters = [adapters]
        if isinstance(adapters, list):
            named: dict[str, str | Path] = {}
            for i, folder in enumerate(adapters):
                name = _adapter_name(folder, i)
                named[name if name not in named else f"{name}-{i}"] = folder
            adapters = named
        adapters = {name: resolve_adapter(folder) for name, folder in (adapters or {}).items()}
        self.device = pick_device(device)
        self.precision = "no" if precision == "fp32" else precision
        self.resolution = int(resolution or 0)
        if model is None:
            if not adapters:
                raise SamloraError("give a model, or adapters that record their base model")
            first = next(iter(adapters.values()))
            model = read_adapter(first).get("base_model")
            if not model:
                raise SamloraError(
                    f"adapter {first} does not record its base model (it has no samlora.json: a plain PEFT "
                    "adapter); pass the base it was trained on: --model NAME (Predictor(model=...))"
                )
        self.loaded = model if isinstance(model, LoadedModel) else load_model(model, device=self.device)
        self.loaded.model.to(self.device)
        self.model: torch.nn.Module = self.loaded.model
        for name, folder in adapters.items():
            self.model = load_adapter(self.loaded, self.model, folder, adapter_name=name)
        if adapters:  # PEFT activates the last adapter loaded; `active` names the first
            use_adapter(self.model, next(iter(adapters)))
        if merge:
            if len(adapters) != 1:
                raise SamloraError(f"merge needs exactly one adapter, got {len(adapters)}")
            self.model = merge_to_base(self.model)
        self.merged = bool(merge)
        self.model.to(self.device).eval()
        self.adapter_names = list(adapters)
        self.active = self.adapter_names[0] if self.adapter_names else VANILLA
        self._batch: object | None = None  # preprocessed pixels of the last set_images call
        self._embeddings: dict[str, object] = {}  # adapter name -> embedding of _batch
        self._sizes: list[tuple[int, int]] = []
        self._size: tuple[int, int] | None = None
        self._index = 0
        self._torch = False

    def _init_backend(
        self, backend: object, model: object, adapters: object, merge: bool, resolution: int
    ) -> None:
        """A Predictor over ``backend`` (e.g. an ONNX export): no torch model, no adapters to switch."""
        if model is not None or adapters or merge:
            raise SamloraError(
                f"a {backend.name} backend runs the model it was exported from (its adapter merged in); "
                "give no model, adapters or merge with it"
            )
        if backend.loaded.spec.task != "promptable":
            raise SamloraError(
                f"a {backend.name} backend runs box/point prompts; {backend.loaded.spec.name} needs text"
            )
        self.backend, self.loaded, self.model = backend, backend.loaded, None
        self.device, self.precision, self.resolution = torch.device("cpu"), "no", int(resolution or 0)
        self.merged, self.adapter_names, self.active = True, [], backend.name
        self._batch, self._embeddings, self._sizes, self._size = None, {}, [], None
        self._index, self._torch = 0, False

    def _encode(self, pixels: torch.Tensor) -> ImageEmbeddings:
        if self.backend is not None:
            return self.backend.encode(pixels)
        return encode(self.model, self.loaded.spec, pixels)

    def _decode(self, emb: ImageEmbeddings, index: torch.Tensor, **prompts) -> Decoded:
        if self.backend is not None:
            return self.backend.decode(emb, index, **prompts)
        return decode(self.model, self.loaded.spec, emb, index, **prompts)

    @property
    def prompt_types(self) -> list[str]:
        """Prompt kinds :meth:`predict` takes for this model (``box``, ``points``, ``text``)."""
        return [t for t in self.loaded.spec.prompt_types if t in ("box", "points", "text")]

    # ------------------------------------------------------------------ adapters

    def use(self, name: str) -> None:
        """Activate adapter ``name``, or ``"vanilla"`` for the base model (adapters disabled).

        The image given to :meth:`set_image` stays: LoRA may sit in the image
        encoder, so the next :meth:`predict` encodes it again with ``name``
        (once; embeddings are kept per adapter until the next image).
        """
        if name != VANILLA and name not in self.adapter_names:
            raise SamloraError(f"no adapter named '{name}'; loaded: {self.adapter_names + [VANILLA]}")
        if self.merged and name != self.active:
            raise SamloraError(
                f"adapter '{self.active}' is merged into the weights (merge=True), so '{name}' cannot be "
                "used; build a Predictor without merge=True to switch adapters or run vanilla"
            )
        if name != VANILLA and isinstance(self.model, peft.PeftModel):
            use_adapter(self.model, name)
        self.active = name

    def _context(self):
        if self.active == VANILLA and isinstance(self.model, peft.PeftModel):
            return self.model.disable_adapter()
        return nullcontext()

    # ------------------------------------------------------------------ images

    @torch.no_grad()
    def set_image(self, image: object) -> None:
        """Encode one image; every following prompt call reuses the embedding."""
        self.set_images([image])

    @torch.no_grad()
    def set_images(self, images: list[object]) -> None:
        """Encode several images in one forward pass; select one with :meth:`select` (the first is selected)."""
        if not images:
            raise PromptError("set_images needs at least one image")
        pixels = [as_image(image) for image in images]
        self._torch = isinstance(images[0], torch.Tensor)
        self._sizes = [(int(p.shape[1]), int(p.shape[2])) for p in pixels]
        work = [shrink(p.to(self.device), self.resolution) for p in pixels]
        self._batch = self.loaded.preprocessing.images(work, self.device)
        self._embeddings = {}
        self._embedding()
        self.select(0)

    def _embedding(self) -> object:
        """Embedding of the last :meth:`set_images` batch under the active adapter, encoded on first need."""
        if self._batch is None:
            raise SamloraError("call set_image(image) (or pass image=...) before predict")
        if self.active not in self._embeddings:
            with torch.no_grad(), self._context(), autocast_for(self.device, self.precision):
                if self.loaded.spec.task == "concept":
                    from samlora.models.concept import encode_images

                    embedding = encode_images(self.model, self._batch)
                else:
                    embedding = self._encode(self._batch)
            self._embeddings[self.active] = embedding
        return self._embeddings[self.active]

    def select(self, index: int) -> None:
        """Make image ``index`` of the last :meth:`set_images` batch the one prompts refer to."""
        if not 0 <= index < len(self._sizes):
            raise SamloraError(
                f"image index {index} is out of range: the last set_images call had {len(self._sizes)} image(s)"
            )
        self._index = index
        self._size = self._sizes[index]

    def predict_batch(self, images: list[object], prompts: list[dict]) -> list[Prediction]:
        """Encode ``images`` together, then decode each image's prompts (``predict`` keyword arguments)."""
        if len(prompts) != len(images):
            raise PromptError(
                f"predict_batch got {len(images)} images but {len(prompts)} prompt dicts; give one per image"
            )
        self.set_images(images)
        out = []
        for index, kwargs in enumerate(prompts):
            self.select(index)
            out.append(self.predict(**kwargs))
        return out

    @torch.no_grad()
    def predict(
        self,
        image: object | None = None,
        boxes: np.ndarray | torch.Tensor | list | None = None,
        points: np.ndarray | torch.Tensor | list | None = None,
        point_labels: np.ndarray | torch.Tensor | list | None = None,
        text: list[str] | str | None = None,
        multimask: bool | None = None,
        post: PostProcess | None = None,
    ) -> Prediction:
        """Segment what the prompts point at in ``image`` (or the image given to :meth:`set_image`).

        Args:
            boxes: ``N x 4`` XYXY pixels: one mask per box.
            points: ``P x 2`` (one object) or ``N x P x 2`` XY pixels (one set per object).
            point_labels: ``P`` / ``N x P``: 1 foreground, 0 background (default 1).
            text: concept prompts (SAM 3): every instance of each.
            multimask: for single-point prompts, pick the best of 3 candidates
                (default: on for one point, off otherwise).
            post: post-processing. Text prompts: threshold, NMS, merge and
                top-k per prompt, min-area, hole filling (default
                ``PostProcess()``). Box/point prompts, where each prompt is one
                requested object: threshold (on the predicted IoU) and min-area
                drop, hole filling applies, NMS/merge/top-k do not; without
                ``post`` every prompt gets its mask. ``prompt_index`` tells
                which prompt each kept mask answers.
        """
        if image is not None:
            self.set_image(image)
        self._embedding()  # raises without an image; encodes it for a newly used adapter
        if text is not None:
            texts = [text] if isinstance(text, str) else list(text)
            if not texts:
                raise PromptError("text=[] holds no prompt; give at least one, e.g. text=['crack']")
            if boxes is not None or points is not None:
                raise PromptError(
                    "text prompts cannot be combined with boxes or points; pass one kind per call"
                )
            pred = self._predict_text(texts, post or PostProcess())
        elif self.loaded.spec.task == "concept":
            raise PromptError(
                "this concept model needs text prompts (text=[...]); it segments every instance of a concept"
            )
        else:
            pred = self._predict_prompts(boxes, points, point_labels, multimask, post)
        return pred.as_torch() if self._torch else pred

    def _predict_prompts(
        self, boxes, points, point_labels, multimask, post: PostProcess | None
    ) -> Prediction:
        pre, spec = self.loaded.preprocessing, self.loaded.spec
        height, width = self._size
        geom = pre.geometry(height, width)
        box_t = pt_t = lab_t = None
        n = 0
        if boxes is not None:
            box_t = as_float(boxes, "boxes")
            if box_t.numel() % 4 or (box_t.ndim > 1 and box_t.shape[-1] != 4) or box_t.ndim > 2:
                raise PromptError(f"boxes must be N x 4 XYXY pixels, got shape {tuple(box_t.shape)}")
            box_t = clip_boxes(box_t.reshape(-1, 4), height, width)
            n = box_t.shape[0]
            box_t = pre.coords(box_t.to(self.device), geom)
        if points is not None:
            pts = as_float(points, "points")
            pts = pts[None] if pts.ndim == 2 else pts
            if pts.ndim != 3 or pts.shape[-1] != 2 or pts.shape[1] == 0:
                raise PromptError(
                    f"points must be P x 2 or N x P x 2 XY pixels, got shape {tuple(pts.shape)}"
                )
            labels = torch.ones(pts.shape[:2], dtype=torch.int64)
            if point_labels is not None:
                given = torch.as_tensor(np.asarray(to_cpu(point_labels)))
                if given.numel() != labels.numel():
                    raise PromptError(
                        f"point_labels has {given.numel()} values for {labels.numel()} points; give one per point"
                    )
                labels = given.reshape(pts.shape[:2]).long()
            if n and pts.shape[0] != n:
                raise PromptError(f"got {n} boxes but {pts.shape[0]} point sets; give one point set per box")
            n = pts.shape[0]
            pt_t, lab_t = pre.coords(pts.to(self.device), geom), labels.to(self.device)
        if n == 0:
            raise PromptError(f"no prompt given; {spec.name} takes {', '.join(self.prompt_types)} prompts")
        single_point = pt_t is not None and box_t is None and pt_t.shape[1] == 1
        multimask = single_point if multimask is None else multimask
        index = torch.full((n,), self._index, dtype=torch.long, device=self.device)
        emb: ImageEmbeddings = self._embedding()
        with self._context(), autocast_for(self.device, self.precision):
            out = self._decode(emb, index, boxes=box_t, points=pt_t, labels=lab_t, multimask=multimask)
        low = best_candidate(out).float()
        scores, prompt_index = out.iou.float().max(dim=1).values.cpu(), torch.arange(n)
        if post is not None:  # the score threshold needs no mask: only kept masks are upsampled
            keep = scores >= post.threshold
            low, scores, prompt_index = low[keep.to(low.device)], scores[keep], prompt_index[keep]
        masks = (pre.logits_to_original(low, geom) > 0).cpu()
        if post is not None and post.fill_holes:
            masks = fill_holes(masks)
        if post is not None and post.min_area > 1:  # also removes specks of kept masks (post.keep_specks)
            masks, keep = min_area_filter(masks, post)
            masks, scores, prompt_index = masks[keep], scores[keep], prompt_index[keep]
        rows, cols = masks.any(2), masks.any(1)  # one pass: boxes and emptiness
        if post is not None:
            keep = rows.any(1)  # an empty mask is no detection
            if not bool(keep.all()):  # (CPU tensors) copy the masks only when some go
                masks, scores, prompt_index = masks[keep], scores[keep], prompt_index[keep]
                rows, cols = rows[keep], cols[keep]
        return Prediction(
            masks=masks.numpy(),
            scores=scores.numpy(),
            boxes=boxes_from_projections(rows, cols).numpy(),
            prompt_index=prompt_index.numpy(),
        )

    def _predict_text(self, texts: list[str], post: PostProcess) -> Prediction:
        if self.loaded.spec.task != "concept":
            raise PromptError(
                f"text prompts need a concept model (SAM 3); {self.loaded.spec.name} takes "
                f"{', '.join(self.prompt_types)} prompts"
            )
        from .concept import predict_concepts

        with self._context(), autocast_for(self.device, self.precision):
            masks, scores, labels = predict_concepts(  # top-k per prompt, no empty masks (postprocess)
                self.model, self.loaded, self._embedding(), texts, self._size, post, image=self._index
            )
        masks, scores, labels = masks.cpu(), scores.float().cpu(), labels.cpu()
        return Prediction(
            masks=masks.numpy(),
            scores=scores.numpy(),
            boxes=masks_to_boxes(masks).numpy(),
            labels=[texts[i] for i in labels.tolist()],
            prompt_index=labels.numpy(),
        )


def _adapter_name(folder: str | Path, index: int) -> str:
    from samlora.evaluate.report import model_label

    name = model_label(resolve_adapter(folder))
    return name if name != VANILLA else f"{name}-{index}"
