"""Class-balanced batches: every batch holds `samples_per_grade` samples of every grade present.

SupCon needs positives for every anchor, and mild fractures are rare, so batches are drawn per grade instead of
from the shuffled dataset. An epoch is a fixed number of iterations, not a pass over the smallest class.
The batches of an epoch depend only on (seed, epoch), so a resumed run draws the same batches. With N
DistributedDataParallel processes the epoch's batches are drawn once and dealt out (rank r takes every N-th), so
an epoch holds the same samples as with one process (rounded up to a multiple of N batches), only faster.
"""
from typing import Sequence

import numpy as np


class BalancedBatchSampler:
    def __init__(self, grades: Sequence[int], samples_per_grade: int, iterations_per_epoch: int,
                 seed: int = 0, rank: int = 0, world_size: int = 1):
        if samples_per_grade < 1 or iterations_per_epoch < 1:
            raise ValueError("samples_per_grade and iterations_per_epoch must be at least 1")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not one of the {world_size} processes")
        grades = np.asarray(grades, dtype=np.int64)
        if grades.size == 0:
            raise ValueError("the balanced sampler needs at least one sample")
        self.members = {int(g): np.flatnonzero(grades == g) for g in np.unique(grades)}
        self.samples_per_grade = samples_per_grade
        self.iterations_per_epoch = iterations_per_epoch
        self.seed = seed
        self.rank = rank
        self.world_size = world_size

    @property
    def grades_present(self) -> list[int]:
        return sorted(self.members)

    @property
    def batch_size(self) -> int:
        return self.samples_per_grade * len(self.members)

    @property
    def iterations_per_process(self) -> int:
        """Optimisation steps of one process per epoch: the epoch's iterations divided among the processes."""
        return -(-self.iterations_per_epoch // self.world_size)

    def epoch_batches(self, epoch: int) -> list[np.ndarray]:
        """This process's index batches of one epoch. Within a grade, samples are drawn without replacement until
        the grade is exhausted (then reshuffled), so small grades are repeated only as often as needed."""
        rng = np.random.default_rng([self.seed, epoch, 0])  # the same stream for every rank (0: as before DDP dealt)
        streams = {grade: _Cycle(indices, rng) for grade, indices in self.members.items()}
        batches = []
        for _ in range(self.iterations_per_process * self.world_size):
            batch = np.concatenate([streams[g].take(self.samples_per_grade) for g in self.grades_present])
            batches.append(rng.permutation(batch))
        return batches[self.rank::self.world_size]

    def __len__(self) -> int:
        return self.iterations_per_process


class _Cycle:
    """Endless reshuffled passes over one grade's indices."""

    def __init__(self, indices: np.ndarray, rng: np.random.Generator):
        self.indices = indices
        self.rng = rng
        self.order = rng.permutation(indices)
        self.position = 0

    def take(self, count: int) -> np.ndarray:
        taken = []
        while count > 0:
            if self.position == len(self.order):
                self.order = self.rng.permutation(self.indices)
                self.position = 0
            chunk = self.order[self.position:self.position + count]
            taken.append(chunk)
            self.position += len(chunk)
            count -= len(chunk)
        return np.concatenate(taken)
