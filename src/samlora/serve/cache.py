"""A bounded LRU of encoded images: one entry per (image content hash, adapter).

Each entry is a *session*: a shallow copy of the server's :class:`Predictor` (same model, same
adapters, no weights copied) that was given one image with :meth:`Predictor.set_image` under one
adapter, so it holds that image's embedding. A later prompt on the same image and adapter calls
only :meth:`Predictor.predict` on it: the prompt decoder, not the image encoder. Memory grows
with ``capacity`` and stops there: the least recently used entry is dropped first.
"""

from __future__ import annotations

import copy
import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from samlora.predict.predictor import Predictor


@dataclass
class Session:
    """A predictor copy holding one image's embedding under ``adapter``; ``height x width`` its original size."""

    predictor: Predictor
    adapter: str
    height: int
    width: int


class EmbeddingCache:
    """LRU of :class:`Session` keyed by ``(sha256, adapter)``, at most ``capacity`` entries.

    Thread-safe for lookups; building a session runs the model, so callers hold the model lock
    around :meth:`build` and every use of a session's predictor.
    """

    def __init__(self, base: Predictor, capacity: int):
        if capacity < 1:
            raise ValueError("the embedding cache needs room for at least one image")
        self.base = base
        self.capacity = capacity
        self.hits = self.misses = self.evictions = 0
        self._entries: OrderedDict[tuple[str, str], Session] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str, adapter: str) -> Session | None:
        """The session of an image under ``adapter`` (now the most recently used), or ``None``."""
        with self._lock:
            session = self._entries.get((key, adapter))
            if session is not None:
                self._entries.move_to_end((key, adapter))
            return session

    def build(self, key: str, adapter: str, image: np.ndarray) -> Session:
        """Encode ``image`` (``H x W x 3`` uint8) under ``adapter`` into a new entry; call with the model lock held."""
        predictor = copy.copy(self.base)  # shares the model; set_image gives the copy its own image state
        predictor.use(adapter)
        predictor.set_image(image)
        session = Session(predictor, adapter, int(image.shape[0]), int(image.shape[1]))
        with self._lock:
            self._entries[(key, adapter)] = session
            self._entries.move_to_end((key, adapter))
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)
                self.evictions += 1
        return session

    def count(self, hit: bool) -> None:
        """Record whether a request found its embedding here."""
        with self._lock:
            if hit:
                self.hits += 1
            else:
                self.misses += 1

    def stats(self) -> dict[str, int]:
        """Entries, capacity, hits, misses and evictions so far."""
        with self._lock:
            return {
                "entries": len(self._entries), "capacity": self.capacity, "hits": self.hits,
                "misses": self.misses, "evictions": self.evictions,
            }  # fmt: skip
