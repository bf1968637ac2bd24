"""Find the CTs in a predict input (a folder or one file) and give each a case id from its file name.

Naming conventions recognised, in this order of precedence inside one folder:
  nnU-Net  `<case>_0000.nii.gz`  (then every other file is a mask or another channel and is ignored),
  VerSe    `<case>_ct.nii.gz`,
  plain    any other image file whose name does not look like a mask (`*_msk`, `*seg*`, `*multilabel*`).
A sub-folder holding a DICOM series is one CT whose case id is the folder name.
"""
import re
from dataclasses import dataclass
from pathlib import Path

import SimpleITK as sitk

from vfnet.errors import VfnetError

IMAGE_ENDINGS = (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd")
_NNUNET_CHANNEL = re.compile(r"^(?P<case>.+)_(?P<channel>\d{4})$")
_MASK_LIKE = re.compile(r"(_msk$|seg|multilabel|_ctd$)", re.IGNORECASE)


@dataclass(frozen=True)
class InputCase:
    case_id: str
    image: Path          # an image file or a DICOM series folder


def split_image_name(name: str) -> tuple[str, str] | None:
    """('case_0000', '.nii.gz') for 'case_0000.nii.gz'; None when the name has no image ending."""
    lowered = name.lower()
    for ending in IMAGE_ENDINGS:
        if lowered.endswith(ending) and len(name) > len(ending):
            return name[:-len(ending)], name[-len(ending):]
    return None


def looks_like_mask(stem: str) -> bool:
    return bool(_MASK_LIKE.search(stem))


def discover_cases(input_path: Path) -> list[InputCase]:
    """All CTs in `input_path` (sorted by case id); raise VfnetError when there are none or ids collide."""
    input_path = Path(input_path)
    if not input_path.exists():
        raise VfnetError(f"Input {input_path} does not exist.")
    if input_path.is_file():
        return [_single_file_case(input_path)]
    cases = _image_file_cases(input_path) + _dicom_folder_cases(input_path)
    if not cases:
        raise VfnetError(f"Input folder {input_path} holds no CT: expected <case>_0000.nii.gz (or .nii, .nrrd, "
                         f".mha, .mhd) files or DICOM series folders.")
    seen: dict[str, Path] = {}
    for case in cases:
        if case.case_id in seen:
            raise VfnetError(f"Input folder {input_path}: {seen[case.case_id].name} and {case.image.name} both "
                             f"give case id '{case.case_id}'; rename one of them.")
        seen[case.case_id] = case.image
    return sorted(cases, key=lambda case: case.case_id)


def _single_file_case(path: Path) -> InputCase:
    parts = split_image_name(path.name)
    if parts is None:
        raise VfnetError(f"Input {path} is not an image file ({', '.join(IMAGE_ENDINGS)}) or a folder.")
    return InputCase(_case_id_from_stem(parts[0]), path)


def _case_id_from_stem(stem: str) -> str:
    match = _NNUNET_CHANNEL.match(stem)
    if match:
        return match.group("case")
    if stem.lower().endswith("_ct") and len(stem) > 3:
        return stem[:-3]
    return stem


def _image_file_cases(folder: Path) -> list[InputCase]:
    stems = {}
    for path in sorted(folder.iterdir()):
        parts = split_image_name(path.name) if path.is_file() else None
        if parts is not None:
            stems[parts[0]] = path
    nnunet = {stem: path for stem, path in stems.items()
              if (match := _NNUNET_CHANNEL.match(stem)) and match.group("channel") == "0000"}
    if nnunet:
        return [InputCase(_NNUNET_CHANNEL.match(stem).group("case"), path) for stem, path in nnunet.items()]
    verse = {stem: path for stem, path in stems.items() if stem.lower().endswith("_ct") and len(stem) > 3}
    if verse:
        return [InputCase(stem[:-3], path) for stem, path in verse.items()]
    return [InputCase(stem, path) for stem, path in stems.items() if not looks_like_mask(stem)]


def _dicom_folder_cases(folder: Path) -> list[InputCase]:
    cases = []
    for sub_folder in sorted(path for path in folder.iterdir() if path.is_dir()):
        # A TotalSegmentator per-structure folder holds NIfTI files, never a DICOM series: skip it cheaply.
        if any(split_image_name(child.name) for child in sub_folder.iterdir()):
            continue
        if sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(sub_folder)):
            cases.append(InputCase(sub_folder.name, sub_folder))
    return cases
