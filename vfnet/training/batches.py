"""Training batches gathered by index, from a copy of the crops on the GPU when it fits.

On a GPU, gathering crops in numpy, converting them and copying every batch to the device kept the GPU idle
most of the time (issue 12: ~590 sample-views/s inside the trainer against 3,460 for the network alone). A fold's
crops are small (float16: 0.7 MB per crop at the gpu plan's 2×32×80×72, ~160 MB for the phantom benchmark's
~220 training vertebrae), so they are copied to the GPU once when
they take at most RESIDENT_FRACTION of its free memory, and each batch is gathered there. On the CPU and on MPS
the batch is gathered in numpy exactly as before.
"""
import numpy as np
import torch

from vfnet.training.data import SampleSet

RESIDENT_FRACTION = 0.25   # of the free GPU memory: the rest stays for activations, cuDNN workspaces, other folds


def fits_on_device(nbytes: int, free_bytes: int, fraction: float = RESIDENT_FRACTION) -> bool:
    return nbytes <= fraction * free_bytes


def _free_bytes(device: torch.device) -> int:
    return int(torch.cuda.mem_get_info(device)[0]) if device.type == "cuda" else 0


class BatchSource:
    """`gather(indices)` -> (float32 images, int64 grades, float32 morphometry or None), all on `device`."""

    def __init__(self, samples: SampleSet, device: torch.device, resident: bool | None = None):
        self.samples = samples
        self.device = device
        self.nbytes = int(samples.arrays.nbytes)
        free = _free_bytes(device)
        self.resident = fits_on_device(self.nbytes, free) if resident is None else resident
        self.description = (f"Crops resident on {device} ({self.nbytes / 2**20:.0f} MB)" if self.resident else
                            f"Crops gathered in host memory ({self.nbytes / 2**20:.0f} MB" +
                            (f", more than {RESIDENT_FRACTION:.0%} of the {free / 2**20:.0f} MB free on {device})"
                             if device.type == "cuda" else ")"))
        if self.resident:
            self.images = torch.from_numpy(samples.arrays).to(device)   # float16 as stored: half the memory
            self.grades = torch.from_numpy(samples.grades).to(device)
            self.morphometry = None if samples.morphometry is None else torch.from_numpy(samples.morphometry).to(device)

    def gather(self, indices: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        if self.resident:
            index = torch.as_tensor(indices, device=self.device)
            morphometry = None if self.morphometry is None else self.morphometry.index_select(0, index)
            return self.images.index_select(0, index).float(), self.grades.index_select(0, index), morphometry
        samples = self.samples
        images = torch.from_numpy(samples.arrays[indices].astype(np.float32))
        grades = torch.from_numpy(samples.grades[indices])
        morphometry = None if samples.morphometry is None else torch.from_numpy(samples.morphometry[indices])
        if self.device.type == "cuda":
            images = images.pin_memory()
        images, grades = images.to(self.device, non_blocking=True), grades.to(self.device, non_blocking=True)
        return images, grades, None if morphometry is None else morphometry.to(self.device, non_blocking=True)
