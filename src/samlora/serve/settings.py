"""The settings of one ``samlora serve`` process (its flags, less the model and adapters)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ServeSettings:
    """Limits and options of the server.

    Attributes:
        host, port: where to listen (127.0.0.1 by default: only this machine can connect).
        token: when set, ``/models`` and ``/predict`` need ``Authorization: Bearer <token>``.
        max_pixels: images with more pixels (width x height) are refused with 413.
        max_upload_bytes: request bodies larger than this are refused with 413.
        max_prompts: at most this many boxes, point sets, points per set or text prompts.
        cache_size: (image, adapter) embeddings kept in the LRU cache.
    """

    host: str = "127.0.0.1"
    port: int = 8000
    token: str | None = None
    max_pixels: int = 40_000_000
    max_upload_bytes: int = 32 * 1024 * 1024
    max_prompts: int = 64
    cache_size: int = 16
