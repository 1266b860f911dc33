"""DataLoaders over an explicit list of indices, with worker seeds that leave the global RNG alone."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch.utils.data import DataLoader, Dataset

from .prompts import worker_init_fn


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
