"""Checkpoint files: tensors and plain Python data only, written atomically, always loaded with weights_only=True.

weights_only=True refuses any payload that would need to run code to unpickle (an object whose __reduce__
calls a function), so loading a checkpoint from someone else cannot execute anything.
"""
import pickle
import random
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vfnet.errors import CheckpointError
from vfnet.fileio import atomic_path

FORMAT = "vfnet-checkpoint-1"


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> None:
    """Write `payload` to `path` via a temporary file and a rename: a reader never sees half a checkpoint."""
    with atomic_path(path, suffix=".pth") as temporary:
        torch.save({"format": FORMAT, **payload}, temporary)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"Checkpoint {path} does not exist.")
    if not zipfile.is_zipfile(path):
        raise CheckpointError(f"Checkpoint {path} is damaged or not a PyTorch checkpoint (not a zip archive).")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        raise CheckpointError(f"Checkpoint {path} holds pickled Python objects ({_refused_global(error)}), not only "
                              f"tensors and plain data; it was refused and nothing in it was run.") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as error:
        first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise CheckpointError(f"Checkpoint {path} is damaged or not a PyTorch checkpoint: {first_line}.") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"Checkpoint {path} is not a vfnet checkpoint (expected format {FORMAT}).")
    return payload


def check_network_plan(path: str | Path, payload: dict[str, Any], network_plan: dict[str, Any]) -> None:
    """Refuse to resume or predict with weights trained for another architecture."""
    if payload.get("network_plan") != network_plan:
        raise CheckpointError(f"Checkpoint {path} was trained with another network plan than the current plan; "
                              f"use the plan it was trained with or start a new training.")


def _refused_global(error: Exception) -> str:
    """The line of torch's message that names what was refused (its first lines suggest turning the safe mode off)."""
    lines = [line.strip() for line in str(error).splitlines() if "GLOBAL" in line or "Unsupported" in line]
    return lines[0].rstrip(".") if lines else "unsupported content"


def capture_rng_state() -> dict[str, Any]:
    """python / numpy / torch (and CUDA) generator states as tensors and plain data."""
    version, internal, gauss = random.getstate()
    kind, keys, position, has_gauss, cached = np.random.get_state()
    state = {"python": [version, list(internal), gauss],
             "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "position": int(position),
                       "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
             "torch": torch.get_rng_state()}
    # Only this process's GPU: reading every GPU's generator would open a CUDA context on each of them (in every
    # DDP process), and a process that never touched CUDA has no CUDA stream to continue.
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    numpy_state = state["numpy"]
    np.random.set_state((numpy_state["kind"], numpy_state["keys"].numpy().astype(np.uint32),
                         numpy_state["position"], numpy_state["has_gauss"], numpy_state["cached_gaussian"]))
    torch.set_rng_state(state["torch"].cpu())
    cuda = state.get("cuda")
    if cuda is not None and torch.cuda.is_available():
        if isinstance(cuda, (list, tuple)):   # older checkpoints held every GPU's state
            index = torch.cuda.current_device()
            cuda = cuda[index] if index < len(cuda) else None
        if cuda is not None:
            torch.cuda.set_rng_state(cuda.cpu())
