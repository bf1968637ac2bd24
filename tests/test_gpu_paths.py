"""The GPU paths of training, checked on the CPU: crops gathered on the device, augmentation that keeps every
tensor on the batch's device (run on torch's 'meta' device, where a stray CPU tensor is an error), the validation
and checkpoint cadence, and every DDP rank's random stream in checkpoint_latest."""
import numpy as np
import pytest
import torch

from vfnet.model.checkpoint import capture_rng_state
from vfnet.training import rng_streams
from vfnet.training.augmentation import DEFAULT_PROBABILITIES, BatchAugmenter, drop_morphometry
from vfnet.training.batches import BatchSource, fits_on_device
from vfnet.training.cadence import CheckpointClock, cadence_note, validation_due
from vfnet.training.data import SampleSet


def _samples(count=6) -> SampleSet:
    rng = np.random.default_rng(0)
    arrays = rng.standard_normal((count, 2, 4, 5, 6)).astype(np.float16)
    return SampleSet([str(i) for i in range(count)], [{}] * count, arrays, np.arange(count) % 4,
                     rng.standard_normal((count, 4)).astype(np.float32))


def test_a_resident_copy_gathers_the_same_batches_as_host_memory():
    samples, indices = _samples(), np.array([4, 1, 1, 3])
    host = BatchSource(samples, torch.device("cpu"))
    resident = BatchSource(samples, torch.device("cpu"), resident=True)
    assert not host.resident and resident.resident and "resident" in resident.description
    for a, b in zip(host.gather(indices), resident.gather(indices)):
        assert a.dtype == b.dtype and torch.equal(a, b)
    assert host.gather(indices)[0].dtype == torch.float32


def test_crops_stay_resident_only_within_a_quarter_of_free_gpu_memory():
    assert fits_on_device(250, 1000) and not fits_on_device(251, 1000)
    assert not fits_on_device(1, 0)   # CPU / MPS: no free CUDA memory, nothing moves


def test_augmentation_keeps_every_tensor_on_the_batch_device():
    config = {"rotation_degrees": [15, 10, 10], "scale_range": [0.9, 1.1], "mirror_left_right": True,
              "gamma_range": [0.8, 1.25], "brightness_range": [0.9, 1.1], "contrast_range": [0.9, 1.1],
              "noise_std": 0.05, "blur_sigma": [0.5, 1.0], "low_resolution_zoom": [0.6, 1.0], "mask_shift_voxels": 1,
              "probabilities": {name: 1.0 for name in [*DEFAULT_PROBABILITIES, "mask_morphology", "mask_shift"]}}
    batch = torch.zeros(3, 2, 8, 8, 8, device="meta")
    assert BatchAugmenter(config).__call__(batch).device.type == "meta"
    assert drop_morphometry(torch.zeros(3, 4, device="meta"), 0.5).device.type == "meta"


def test_validation_runs_every_k_epochs_at_the_check_epoch_and_at_the_end():
    due = [epoch + 1 for epoch in range(12) if validation_due(epoch, 12, 5, check_epoch=4)]
    assert due == [4, 5, 10, 12]
    assert all(validation_due(epoch, 12, 1) for epoch in range(12))


def test_checkpoint_clock_writes_at_most_every_t_seconds_and_at_the_end():
    now = [0.0]
    clock = CheckpointClock(60, clock=lambda: now[0])
    now[0] = 59.0
    assert not clock.due(last_epoch=False) and clock.due(last_epoch=True)
    now[0] = 61.0
    assert clock.due(last_epoch=False)
    clock.written()
    assert not clock.due(last_epoch=False)
    assert CheckpointClock(0).due(last_epoch=False)
    assert "repeats at most the last 60 s" in cadence_note(5, 60) and "every 5 epochs" in cadence_note(5, 60)
    assert "after every epoch" in cadence_note(1, 0)


def test_each_rank_restores_its_own_stream():
    states = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        states.append(capture_rng_state())
    payload = rng_streams.checkpoint_entries(states)
    assert payload["rng"] is states[0] and len(payload["rng_ranks"]) == 2
    expected = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        expected.append(torch.rand(3))
    for rank in (1, 0):
        torch.manual_seed(99)
        assert rng_streams.restore_own_stream(payload, rank)
        assert torch.equal(torch.rand(3), expected[rank])
    # A checkpoint of fewer processes (or of one) has no state for rank 2: that rank keeps its fresh seed.
    assert not rng_streams.restore_own_stream(payload, 2)
    single = rng_streams.checkpoint_entries(states[:1])
    assert single["rng_ranks"] is None and rng_streams.restore_own_stream(single, 0)
    assert torch.equal(torch.rand(3), expected[0])


@pytest.mark.parametrize("rank", [0, 1])
def test_old_checkpoints_with_one_state_still_resume_rank_zero(rank):
    torch.manual_seed(5)
    payload = {"rng": capture_rng_state()}
    assert rng_streams.restore_own_stream(payload, rank) == (rank == 0)
