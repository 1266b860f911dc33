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


class _EpochOrder(torch.utils.data.Sampler):
    """The ``(epoch, index)`` pairs of the epoch being read, set by :meth:`EpochLoader.epoch`."""

    def __init__(self) -> None:
        self.pairs: list[tuple[int, int]] = []

    def __iter__(self):
        return iter(self.pairs)

    def __len__(self) -> int:
        return len(self.pairs)


class _EpochItems(Dataset):
    """``dataset[(epoch, index)]``: item ``index`` as epoch ``epoch`` makes it (in any process)."""

    def __init__(self, dataset: Dataset, set_epoch: Callable[[Dataset, int], None]) -> None:
        self.dataset, self.set_epoch, self.current = dataset, set_epoch, None

    def __getitem__(self, key: tuple[int, int]):
        epoch, index = key
        if epoch != self.current:
            self.set_epoch(self.dataset, epoch)
            self.current = epoch
        return self.dataset[index]

    def __len__(self) -> int:
        return len(self.dataset)


class EpochLoader:
    """A training loader whose worker processes live for the whole run.

    A new DataLoader per epoch starts its workers again every epoch (a fork and a warm-up each),
    which costs more than a whole epoch of a small cached data set. Here one DataLoader with
    persistent workers reads every epoch: the sampler hands the workers ``(epoch, index)`` pairs,
    so an item depends only on the run's seed, its epoch and its index (as with a fresh loader per
    epoch), whichever worker makes it and however many workers there are.
    """

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int,
        collate: Callable,
        num_workers: int,
        set_epoch: Callable[[Dataset, int], None],
        seed: int = 0,
    ) -> None:
        self.items, self.order = _EpochItems(dataset, set_epoch), _EpochOrder()
        self.loader = DataLoader(
            self.items,
            batch_size=batch_size,
            sampler=self.order,
            num_workers=num_workers,
            collate_fn=collate,
            worker_init_fn=worker_init_fn if num_workers else None,
            persistent_workers=num_workers > 0,
            pin_memory=torch.cuda.is_available(),
            generator=torch.Generator().manual_seed(seed),
        )

    def epoch(self, epoch: int, indices: Sequence[int]) -> DataLoader:
        """The loader over ``indices`` (in this order) of epoch ``epoch``; iterate it once."""
        self.order.pairs = [(epoch, int(i)) for i in indices]
        return self.loader
