"""Process set-up: the glibc allocator tuning every training process needs, and DistributedDataParallel helpers.

One process per GPU (or per CPU process in tests) is started with torch.multiprocessing.spawn; rank 0 alone
validates, writes checkpoints and logs, the others only train.
"""
import ctypes
import os
import socket
import sys
from typing import Callable

import torch
import torch.distributed as dist

# glibc mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
_MMAP_THRESHOLD_MAX = 32 * 1024 * 1024  # the largest value glibc accepts on 64-bit systems


def raise_malloc_thresholds() -> bool:
    """Stop glibc from returning activation-sized blocks to the OS after every step.

    Measured on the 2-core development machine (issue 4): otherwise every step pays page faults for memory it
    just freed, and training steps were 1.7× slower. Returns whether the settings were applied (glibc only).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        applied = [libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX),
                   libc.mallopt(_M_TRIM_THRESHOLD, 1024 * 1024 * 1024),
                   libc.mallopt(_M_TOP_PAD, 64 * 1024 * 1024)]
    except (OSError, AttributeError):  # not glibc (e.g. musl)
        return False
    return all(value == 1 for value in applied)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def init_process_group(rank: int, world_size: int, port: int, backend: str) -> None:
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    dist.init_process_group(backend, rank=rank, world_size=world_size)


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def is_main_process() -> bool:
    return not is_distributed() or dist.get_rank() == 0


def mean_over_processes(values: dict[str, float], device: torch.device) -> dict[str, float]:
    """Average per-process scalars (epoch losses) so every rank logs the same numbers."""
    if not is_distributed():
        return values
    names = sorted(values)
    tensor = torch.tensor([values[name] for name in names], dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    tensor /= dist.get_world_size()
    return dict(zip(names, tensor.tolist()))


def broadcast_from_main(value):
    """The main process's value of a picklable object, on every rank (e.g. the run's seed)."""
    if not is_distributed():
        return value
    holder = [value]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def gather_from_all(value) -> list:
    """Every rank's value of a picklable object, in rank order, on every rank (all must call it)."""
    if not is_distributed():
        return [value]
    values = [None] * dist.get_world_size()
    dist.all_gather_object(values, value)
    return values


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def spawn(worker: Callable[..., None], world_size: int, args: tuple) -> None:
    """Run worker(rank, world_size, port, *args) in `world_size` processes and wait for all of them."""
    torch.multiprocessing.spawn(worker, args=(world_size, free_port(), *args), nprocs=world_size, join=True)
