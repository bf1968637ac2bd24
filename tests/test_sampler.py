import numpy as np
import pytest

from vfnet.training.sampler import BalancedBatchSampler

GRADES = [0] * 20 + [1] * 2 + [3] * 5  # grade 2 absent, grade 1 smaller than samples_per_grade


def test_every_batch_holds_k_samples_of_each_present_grade():
    sampler = BalancedBatchSampler(GRADES, samples_per_grade=3, iterations_per_epoch=7, seed=0)
    batches = sampler.epoch_batches(0)
    assert len(batches) == 7 and sampler.batch_size == 9
    grades = np.asarray(GRADES)
    for batch in batches:
        counts = {g: int((grades[batch] == g).sum()) for g in (0, 1, 2, 3)}
        assert counts == {0: 3, 1: 3, 2: 0, 3: 3}


def test_large_grades_are_drawn_without_replacement_within_a_pass():
    sampler = BalancedBatchSampler(GRADES, samples_per_grade=4, iterations_per_epoch=5, seed=1)
    grade0 = [i for batch in sampler.epoch_batches(0) for i in batch if GRADES[i] == 0]
    assert len(grade0) == 20 and len(set(grade0)) == 20  # 5 batches x 4 = exactly one pass over 20 samples


def test_batches_depend_only_on_seed_and_epoch():
    a = BalancedBatchSampler(GRADES, 2, 4, seed=5)
    b = BalancedBatchSampler(GRADES, 2, 4, seed=5)
    assert all(np.array_equal(x, y) for x, y in zip(a.epoch_batches(3), b.epoch_batches(3)))
    assert not all(np.array_equal(x, y) for x, y in zip(a.epoch_batches(3), a.epoch_batches(4)))


def test_processes_share_out_one_epoch_of_batches():
    single = BalancedBatchSampler(GRADES, 2, 4, seed=5).epoch_batches(3)
    ranks = [BalancedBatchSampler(GRADES, 2, 4, seed=5, rank=r, world_size=2) for r in (0, 1)]
    assert [len(sampler) for sampler in ranks] == [2, 2]
    dealt = [batch for pair in zip(*(sampler.epoch_batches(3) for sampler in ranks)) for batch in pair]
    assert all(np.array_equal(x, y) for x, y in zip(single, dealt)) and len(dealt) == len(single)
    # 5 iterations over 2 processes: 3 steps each, so an epoch never holds fewer samples than with one process.
    assert len(BalancedBatchSampler(GRADES, 2, 5, seed=5, rank=1, world_size=2).epoch_batches(0)) == 3


def test_invalid_arguments_are_refused():
    with pytest.raises(ValueError):
        BalancedBatchSampler([], 2, 3)
    with pytest.raises(ValueError):
        BalancedBatchSampler([0, 1], 0, 3)
    with pytest.raises(ValueError):
        BalancedBatchSampler([0, 1], 2, 3, rank=2, world_size=2)
