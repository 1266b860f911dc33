"""The work behind the API: one Predictor, its adapters, the embedding cache and the model lock.

Switching adapters is global PEFT state, so every use of the model (encoding an image, decoding
prompts) runs under one lock: requests are queued and each runs whole under the adapter it
named, so concurrent clients get exactly the masks sequential calls give. What needs no model
(reading the upload, decoding the image, checking prompts, RLE-encoding masks) runs outside it.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from samlora.errors import PromptError
from samlora.lora.adapters import read_adapter
from samlora.predict.predictor import VANILLA, Prediction, Predictor
from samlora.tasks.concept.scoring import rle

from .cache import EmbeddingCache, Session
from .schema import PredictRequest, RequestError, check_prompts
from .settings import ServeSettings
from .upload import content_hash, decode_image

log = logging.getLogger(__name__)


class Engine:
    """Answers ``/models`` and ``/predict`` for one base model with ``adapters`` (name -> folder)."""

    def __init__(self, predictor: Predictor, adapters: dict[str, Path], settings: ServeSettings):
        self.predictor = predictor
        self.settings = settings
        self.adapters = {name: read_adapter(folder) for name, folder in adapters.items()}
        self.cache = EmbeddingCache(predictor, settings.cache_size)
        self.lock = threading.Lock()
        self.requests = 0

    @property
    def default_adapter(self) -> str:
        """The adapter a request without ``adapter`` gets: the first one, or vanilla."""
        return next(iter(self.adapters), VANILLA)

    def describe(self) -> dict[str, Any]:
        """The base model, its adapters (their ``samlora.json`` and class names) and the limits."""
        loaded = self.predictor.loaded
        s = self.settings
        return {
            "model": {
                "name": loaded.name, "family": loaded.spec.name, "task": loaded.spec.task,
                "prompt_types": self.predictor.prompt_types, "device": str(self.predictor.device),
                "precision": self.predictor.precision, "resolution": self.predictor.resolution,
            },
            "adapters": [
                {"name": name, "class_names": meta.get("class_names") or {}, "metadata": meta}
                for name, meta in self.adapters.items()
            ],
            "default_adapter": self.default_adapter,
            "vanilla": VANILLA,
            "limits": {
                "max_pixels": s.max_pixels, "max_upload_bytes": s.max_upload_bytes,
                "max_prompts": s.max_prompts, "cache_size": s.cache_size,
            },
        }  # fmt: skip

    def predict(self, data: bytes, request: PredictRequest) -> tuple[dict[str, Any], str]:
        """Answer one ``POST /predict``: the response body and a note for the request's log line.

        Raises:
            RequestError: for anything wrong with the request (4xx).
        """
        adapter = request.adapter or self.default_adapter
        if adapter != VANILLA and adapter not in self.adapters:
            raise RequestError(
                f"no adapter named '{adapter}'; this server has {list(self.adapters) + [VANILLA]}", 404
            )
        names = [adapter]
        if request.compare:
            if adapter == VANILLA:
                raise RequestError(
                    "compare shows an adapter next to vanilla: name an adapter "
                    f"(this server has {list(self.adapters) or 'none'})"
                )
            names.append(VANILLA)
        key = content_hash(data)
        sessions: dict[str, Session | None] = {name: self.cache.get(key, name) for name in names}
        found = next((s for s in sessions.values() if s is not None), None)
        image = None if all(sessions.values()) else decode_image(data, self.settings.max_pixels)
        height, width = (found.height, found.width) if found else image.shape[:2]
        prompts = check_prompts(
            request.prompts, height, width, self.settings.max_prompts, self.predictor.loaded.spec.task
        )
        texts = request.prompts.text or None
        post = request.post.settings(text=bool(texts))
        results = []
        with self.lock:
            self.requests += 1
            for name in names:
                session = sessions[name]
                self.cache.count(hit=session is not None)
                session = session or self.cache.build(key, name, image)
                session.predictor.use(name)  # the model's active adapter is global state: set it each time
                try:
                    pred = session.predictor.predict(
                        boxes=prompts.boxes or None, points=prompts.points or None,
                        point_labels=prompts.labels or None, text=texts, post=post,
                    )  # fmt: skip
                except PromptError as err:
                    raise RequestError(str(err)) from None
                results.append((name, sessions[name] is not None, pred))
        body = {
            "image": {"width": int(width), "height": int(height), "sha256": key},
            "results": [
                {"adapter": name, "cached": cached, "instances": instances(pred)}
                for name, cached, pred in results
            ],
        }
        note = " ".join(f"{name}:{'hit' if cached else 'miss'}:{len(pred)}" for name, cached, pred in results)
        return body, note


def instances(pred: Prediction) -> list[dict[str, Any]]:
    """A prediction as JSON instances: COCO RLE at the original size, XYXY box, score, prompt index, label."""
    out = []
    for k in range(len(pred)):
        mask = pred.masks[k]
        out.append(
            {
                "segmentation": rle(mask),
                "bbox": [float(v) for v in pred.boxes[k]],
                "score": float(pred.scores[k]),
                "prompt_index": int(pred.prompt_index[k]) if pred.prompt_index is not None else k,
                "label": pred.labels[k] if pred.labels is not None else "object",
                "area": int(mask.sum()),
            }
        )
    return out
