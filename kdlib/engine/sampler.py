"""Iteration-based, resumable, rank-aware sampling of training images.

The global stream of sample indices is a concatenation of per-epoch permutations drawn from
(seed, epoch). Global step t uses the stream positions [t*B, (t+1)*B) (B = global batch); rank r of W
takes every W-th of them, so the set of images of a step is the same for any world size, and resuming at
step t needs no state beyond t. Each item is ``(index, epoch)`` so the dataset can derive the per-sample
augmentation RNG from (seed, epoch, index) inside any DataLoader worker.
"""
from __future__ import annotations

from typing import Iterator, Tuple

import numpy as np
from torch.utils.data import Dataset, Sampler


class ResumableSampler(Sampler[Tuple[int, int]]):
    def __init__(self, dataset_size: int, global_batch: int, iterations: int, seed: int = 0, rank: int = 0,
                 world_size: int = 1, start_iteration: int = 0) -> None:
        if global_batch % world_size:
            raise ValueError(f"global batch {global_batch} is not divisible by the world size {world_size}")
        if dataset_size < 1:
            raise ValueError("the training set is empty")
        self.n, self.batch, self.iterations = dataset_size, global_batch, iterations
        self.seed, self.rank, self.world, self.start = seed, rank, world_size, start_iteration

    def _permutation(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, epoch]).permutation(self.n)

    def __iter__(self) -> Iterator[Tuple[int, int]]:
        position = self.start * self.batch
        end = self.iterations * self.batch
        epoch, offset = divmod(position, self.n)
        perm = self._permutation(epoch)
        while position < end:
            if offset == self.n:
                epoch, offset = epoch + 1, 0
                perm = self._permutation(epoch)
            if position % self.world == self.rank:
                yield int(perm[offset]), epoch
            position += 1
            offset += 1

    def __len__(self) -> int:
        return (self.iterations - self.start) * self.batch // self.world


class EpochKeyed(Dataset):
    """Adapter: ``dataset[(index, epoch)]`` sets the augmentation epoch, then returns ``dataset[index]``."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: Tuple[int, int]):
        index, epoch = key
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)
        return self.dataset[index]
