"""Data order per epoch and process, reproducible and resumable.

Each epoch shuffles the training indices with a generator seeded by
``(seed, epoch)``, so every process computes the same permutation and takes
its own interleaved shard. A resumed run rebuilds the same order and skips the
batches already done, without decoding them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ..data.prompts import seed_for, worker_init_fn


def epoch_indices(num_items: int, seed: int, epoch: int, rank: int, world: int, shuffle: bool) -> list[int]:
    """Indices this process reads in ``epoch``; every process gets the same count (padded by wrapping)."""
    if shuffle:
        order = np.random.default_rng(seed_for(seed, "order", epoch)).permutation(num_items).tolist()
    else:
        order = list(range(num_items))
    per_rank = math.ceil(num_items / world) if num_items else 0
    padded = order + order[: per_rank * world - num_items]
    return padded[rank::world]


def shard_indices(num_items: int, rank: int, world: int) -> list[int]:
    """Evaluation shard: each item exactly once over all processes (counts may differ by one)."""
    return list(range(rank, num_items, world))


def make_loader(
    dataset: Dataset,
    indices: Sequence[int],
    batch_size: int,
    collate: Callable,
    num_workers: int,
    drop_last: bool = False,
    seed: int = 0,
) -> DataLoader:
    """A DataLoader over ``indices`` in the given order (no sampler randomness of its own).

    Each new iterator draws its workers' base seed from a generator of its own
    seeded with ``seed``, never from the global torch generator, so creating a
    loader (an extra one when a run resumes mid-epoch, or one for validation)
    leaves the global random stream (LoRA dropout) untouched.
    """
    return DataLoader(
        torch.utils.data.Subset(dataset, list(indices)),
        batch_size=batch_size,
        shuffle=False,
        drop_last=drop_last,
        num_workers=num_workers,
        collate_fn=collate,
        worker_init_fn=worker_init_fn if num_workers else None,
        persistent_workers=False,
        pin_memory=torch.cuda.is_available(),
        generator=torch.Generator().manual_seed(seed),
    )


def batches_per_epoch(num_items: int, world: int, batch_size: int) -> int:
    """Micro-batches each process runs per epoch."""
    per_rank = math.ceil(num_items / world) if num_items else 0
    return math.ceil(per_rank / batch_size)
