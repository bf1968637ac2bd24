"""Where a synthetic dataset is written: built in a hidden folder beside the target, then renamed into place.

An interrupted run therefore leaves only a hidden `.<name>.partial-*` folder, never a half-written dataset
under the target name. Regenerating over a previous synthetic dataset replaces it; any other non-empty folder
is refused, so user data is never deleted.
"""
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from vfnet.errors import VfnetError
from vfnet.fileio import read_json

TRUTH_FILE = "synthetic_truth.json"
TRUTH_FORMAT = "vfnet-synthetic-truth-1"
GENERATED_ENTRIES = frozenset({"dataset.json", "imagesTr", "labelsTr", TRUTH_FILE})


def check_target(folder: Path) -> None:
    """Raise VfnetError unless `folder` is absent, empty or a complete earlier synthetic dataset."""
    if not folder.exists():
        return
    if not folder.is_dir():
        raise VfnetError(f"Output {folder} exists and is not a folder; choose another output folder.")
    entries = {entry.name for entry in folder.iterdir()}
    if not entries:
        return
    if not is_synthetic_dataset(folder):
        raise VfnetError(f"Output folder {folder} is not empty and holds no synthetic dataset "
                         f"({TRUTH_FILE} missing or foreign); refusing to overwrite it.")
    foreign = sorted(entries - GENERATED_ENTRIES)
    if foreign:
        raise VfnetError(f"Output folder {folder} holds a synthetic dataset plus other files "
                         f"({', '.join(foreign[:5])}); move them away before regenerating.")


def is_synthetic_dataset(folder: Path) -> bool:
    try:
        truth = read_json(folder / TRUTH_FILE)
    except VfnetError:
        return False
    return isinstance(truth, dict) and truth.get("format") == TRUTH_FORMAT


@contextmanager
def staged_folder(target: Path) -> Iterator[Path]:
    """Yield a hidden staging folder beside `target`; on success it replaces `target`, on failure it is removed."""
    check_target(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
    except OSError as error:
        raise VfnetError(f"Cannot create a folder beside {target}: {error.strerror or error}.") from None
    try:
        yield staging
        _replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _replace(staging: Path, target: Path) -> None:
    """Swap the finished dataset in; the old synthetic one (checked again, it may have changed) is deleted."""
    check_target(target)
    retired = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
    old = retired / target.name
    try:
        if target.exists():
            os.replace(target, old)
        os.replace(staging, target)
    except OSError as error:
        if old.exists() and not target.exists():
            os.replace(old, target)  # put the previous dataset back
        raise VfnetError(f"Cannot move the generated dataset into {target}: {error.strerror or error}.") from None
    finally:
        shutil.rmtree(retired, ignore_errors=True)
