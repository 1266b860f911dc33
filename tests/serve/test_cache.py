"""The embedding LRU: bounded, least recently used first out, sessions independent of each other."""

from __future__ import annotations

import numpy as np
import pytest

from samlora.predict.predictor import Predictor
from samlora.serve.cache import EmbeddingCache

from .conftest import scene

BOXES = [[10, 10, 80, 70], [50, 20, 120, 90]]


def test_lru_keeps_at_most_capacity_and_drops_the_oldest(predictor: Predictor) -> None:
    cache = EmbeddingCache(predictor, capacity=2)
    one, two, three = (scene(s)[0] for s in (20, 21, 22))
    cache.build("one", "a1", one)
    cache.build("two", "a1", two)
    assert cache.get("one", "a1") is not None  # "one" is now the most recently used
    cache.build("three", "a1", three)
    assert cache.get("two", "a1") is None and cache.get("one", "a1") is not None
    assert cache.get("one", "a2") is None  # keyed by adapter too
    assert cache.stats()["entries"] == 2 and cache.stats()["evictions"] == 1
    with pytest.raises(ValueError):
        EmbeddingCache(predictor, capacity=0)


def test_sessions_hold_their_own_image_under_their_own_adapter(
    predictor: Predictor, sequential: Predictor
) -> None:
    """Each session answers as a fresh predictor would, whatever the other sessions did since."""
    cache = EmbeddingCache(predictor, capacity=4)
    images = {s: scene(s)[0] for s in (23, 24)}
    sessions = {(s, a): cache.build(str(s), a, img) for s, img in images.items() for a in ("a1", "vanilla")}
    for (s, adapter), session in reversed(list(sessions.items())):
        session.predictor.use(adapter)
        got = session.predictor.predict(boxes=BOXES)
        sequential.use(adapter)
        sequential.set_image(images[s])
        want = sequential.predict(boxes=BOXES)
        assert np.array_equal(got.masks, want.masks) and np.allclose(got.scores, want.scores)
        assert (session.height, session.width) == images[s].shape[:2]
    a1 = sessions[(23, "a1")].predictor.predict(boxes=BOXES)
    vanilla = sessions[(23, "vanilla")].predictor.predict(boxes=BOXES)
    assert not np.array_equal(a1.masks, vanilla.masks) or not np.allclose(a1.scores, vanilla.scores)
