"""Every process's random streams in checkpoint_latest, so that `--c` continues each DDP rank's own stream.

Augmentation and dropout draw from the process's generators. When every rank restored rank 0's state, all ranks
drew the same augmentations from then on; now each rank's state is gathered to the checkpoint as a list.
"""
from typing import Any

from vfnet.model.checkpoint import capture_rng_state, restore_rng_state
from vfnet.training import distributed


def gather_rng_states() -> list[dict[str, Any]]:
    """Every rank's generator states, in rank order (a collective call: every rank must make it)."""
    return distributed.gather_from_all(capture_rng_state())


def checkpoint_entries(states: list[dict[str, Any]]) -> dict[str, Any]:
    """`rng` keeps rank 0's state (single-process checkpoints look as before); `rng_ranks` holds them all."""
    return {"rng": states[0], "rng_ranks": states if len(states) > 1 else None}


def restore_own_stream(payload: dict[str, Any], rank: int) -> bool:
    """Restore this rank's saved state; False when the checkpoint holds none for it (saved with fewer processes),
    in which case the rank keeps its fresh seed."""
    states = payload.get("rng_ranks") or [payload["rng"]]
    if rank >= len(states):
        return False
    restore_rng_state(states[rank])
    return True
