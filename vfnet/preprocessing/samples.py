"""The crop sample format: the one module that writes, reads and checks `<data_identifier>/<case>_<label>.*`.

A sample is `<id>.npy` (float16 (C, Z, Y, X)) and then `<id>.json` (its properties). The JSON is written last and
atomically, so its presence means the sample is complete. Each JSON records what the crop was made from: the
plan's preprocessing section (`preprocessing_signature`), the grade and the case's dataset.json entry
(`entry_signature`), so a rerun redoes a crop whose inputs changed and training refuses crops made with
another plan.
"""
import hashlib
import json
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from vfnet.errors import VfnetError
from vfnet.fileio import read_json, save_npy, write_json

ARRAY_SUFFIX = ".npy"
PROPERTIES_SUFFIX = ".json"


def sample_id(case_id: str, label: int) -> str:
    return f"{case_id}_{int(label)}"


def _digest(content: Any) -> str:
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:16]


def preprocessing_signature(preprocessing_plan: Mapping[str, Any]) -> str:
    # JSON round trip first: tuples and lists, as a loaded plans file would hold them, sign the same.
    return _digest(json.loads(json.dumps(preprocessing_plan)))


def entry_signature(case_id: str, patient: str, image: Path, mask: Path | None, centroids: Path | None) -> str:
    """What a case's crops were made from, besides the plan: its dataset.json entry and input files (by name,
    so a moved raw folder does not redo everything)."""
    return _digest({"case": case_id, "patient": str(patient), "image": Path(image).name,
                    "mask": Path(mask).name if mask is not None else None,
                    "centroids": Path(centroids).name if centroids is not None else None})


def array_path(folder: Path, sample: str) -> Path:
    return Path(folder) / f"{sample}{ARRAY_SUFFIX}"


def properties_path(folder: Path, sample: str) -> Path:
    return Path(folder) / f"{sample}{PROPERTIES_SUFFIX}"


def write_sample(folder: Path, array: np.ndarray, properties: Mapping[str, Any]) -> None:
    """Array first, properties last: a sample without its JSON is unfinished and never read."""
    sample = properties["sample"]
    save_npy(array_path(folder, sample), np.asarray(array).astype(np.float16))
    write_json(properties_path(folder, sample), dict(properties))


def read_properties(folder: Path, sample: str) -> dict[str, Any] | None:
    """One sample's properties, or None when it is unfinished, unreadable or not an object (then redo it)."""
    path = properties_path(folder, sample)
    if not path.is_file():
        return None
    try:
        properties = read_json(path, "sample properties")
    except VfnetError:
        return None
    return properties if isinstance(properties, dict) else None


def read_sample_properties(folder: Path) -> list[dict[str, Any]]:
    """The properties of every complete sample in `folder`, sorted by sample id."""
    folder = Path(folder)
    if not folder.is_dir():
        raise VfnetError(f"Preprocessed folder {folder} does not exist; run vfnet_plan_and_preprocess first.")
    properties = []
    for path in sorted(folder.glob(f"*{PROPERTIES_SUFFIX}")):
        content = read_json(path, "Sample properties")
        if not isinstance(content, dict) or "sample" not in content:
            raise VfnetError(f"Sample properties {path} are not a sample's JSON (no 'sample' key); delete it or "
                             f"preprocess again with --clean.")
        properties.append(content)
    return properties


def sample_ids_on_disk(folder: Path) -> set[str]:
    """Ids of every sample with a file in `folder`, complete or not (used to remove stale ones)."""
    folder = Path(folder)
    if not folder.is_dir():
        return set()
    return {path.stem for path in folder.iterdir()
            if path.suffix in (ARRAY_SUFFIX, PROPERTIES_SUFFIX) and not path.name.startswith(".")}


def remove_sample(folder: Path, sample: str) -> None:
    """Properties first, so a half-removed sample reads as unfinished, never as complete."""
    properties_path(folder, sample).unlink(missing_ok=True)
    array_path(folder, sample).unlink(missing_ok=True)


def load_arrays(folder: Path, samples: Iterable[str], shape: list[int]) -> np.ndarray:
    """(N, *shape) float16 arrays of `samples`, each checked against the plan's shape."""
    samples = list(samples)
    arrays = np.empty((len(samples), *shape), dtype=np.float16)
    for index, sample in enumerate(samples):
        path = array_path(folder, sample)
        try:
            array = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as error:
            raise VfnetError(f"Preprocessed crop {path} cannot be read: {error}.") from None
        if list(array.shape) != list(shape):
            raise VfnetError(f"Preprocessed crop {path} has shape {list(array.shape)}, the plan expects {shape}; "
                             f"preprocess again with this plan.")
        arrays[index] = array
    return arrays


def check_signatures(folder: Path, properties: Iterable[Mapping[str, Any]], preprocessing_plan: Mapping[str, Any],
                     rerun_command: str) -> None:
    """Refuse crops made with another preprocessing section than the plan that will use them (for example a
    `--override preprocessing.*` at training time): the model would be trained on one input and predict another."""
    expected = preprocessing_signature(preprocessing_plan)
    stale = [p["sample"] for p in properties if p.get("preprocessing_signature") != expected]
    if stale:
        raise VfnetError(
            f"{len(stale)} crop(s) in {folder} (e.g. {stale[0]}) were made with another plan's preprocessing "
            f"section than the plan in use; run `{rerun_command}` to redo them (or drop the preprocessing.* "
            f"override).")
