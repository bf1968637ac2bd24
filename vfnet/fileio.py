"""Atomic writes: write to a temporary file in the same folder, then rename over the target.

A reader therefore sees either the old file or the complete new one, never half of it, even when the
writer is killed. Every file vfnet produces goes through these helpers.
"""
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from vfnet.errors import VfnetError


@contextmanager
def atomic_path(target: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path next to `target`; on success it is renamed to `target`, on error removed.

    `suffix` keeps the file ending for writers that infer the format from it (e.g. SimpleITK, matplotlib).
    """
    target = Path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp" + suffix, dir=target.parent)
        os.close(handle)
    except OSError as error:
        raise VfnetError(f"Cannot write {target}: {error.strerror or error}.") from error
    temporary = Path(temporary)
    try:
        yield temporary
        os.replace(temporary, target)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise VfnetError(f"Cannot write {target}: {error.strerror or error}.") from error
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def remove_stale_temporaries(folder: str | os.PathLike) -> None:
    """Delete temporary files that a killed writer left in `folder` (not below it).

    Call only where this process is the folder's single writer (a fold folder, a crop folder, a prediction
    output), since another writer's temporary file would look the same.
    """
    folder = Path(folder)
    if folder.is_dir():
        for stale in folder.glob(".*.tmp*"):
            stale.unlink(missing_ok=True)


def write_json(target: str | os.PathLike, data: Any) -> None:
    with atomic_path(target) as temporary:
        with open(temporary, "w") as handle:
            json.dump(data, handle, indent=2, sort_keys=False, allow_nan=False, default=_json_default)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())


def write_text(target: str | os.PathLike, text: str) -> None:
    with atomic_path(target) as temporary:
        Path(temporary).write_text(text)


def save_npy(target: str | os.PathLike, array: np.ndarray) -> None:
    with atomic_path(target, suffix=".npy") as temporary:
        np.save(temporary, array, allow_pickle=False)


def read_json(path: str | os.PathLike, what: str = "JSON file") -> Any:
    """Read JSON with an error that names the file instead of a JSONDecodeError traceback."""
    path = Path(path)
    try:
        with open(path) as handle:
            return json.load(handle)
    except FileNotFoundError:
        raise VfnetError(f"{what} {path} does not exist.") from None
    except json.JSONDecodeError as error:
        raise VfnetError(f"{what} {path} is not valid JSON (line {error.lineno}, column {error.colno}: "
                         f"{error.msg}).") from None
    except (OSError, UnicodeDecodeError) as error:
        raise VfnetError(f"{what} {path} cannot be read: {error}.") from None


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
