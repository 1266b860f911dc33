"""Data order per epoch and process, reproducible and resumable.

Each epoch shuffles the training indices with a generator seeded by
``(seed, epoch)``, so every process computes the same permutation and takes
its own interleaved shard. A resumed run rebuilds the same order and skips the
batches already done, without decoding them.
"""

from __future__ import annotations

import math

import numpy as np

from samlora.data.prompts import seed_for


def epoch_indices(num_items: int, seed: int, epoch: int, rank: int, world: int, shuffle: bool) -> list[int]:
    """Indices this process reads in ``epoch``; every process gets the same count (padded by wrapping)."""
    if shuffle:
        order = np.random.default_rng(seed_for(seed, "order", epoch)).permutation(num_items).tolist()
    else:
        order = list(range(num_items))
    per_rank = math.ceil(num_items / world) if num_items else 0
    padded = order + order[: per_rank * world - num_items]
    return padded[rank::world]


def batches_per_epoch(num_items: int, world: int, batch_size: int) -> int:
    """Micro-batches each process runs per epoch."""
    per_rank = math.ceil(num_items / world) if num_items else 0
    return math.ceil(per_rank / batch_size)
