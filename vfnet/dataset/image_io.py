"""Reading and writing images and VerSe centroid files, with errors that name the file.

SimpleITK does the I/O: NIfTI, NRRD, MHA and DICOM series folders all arrive as an `sitk.Image`
whose geometry (spacing, origin, direction) is kept, because every later step works in physical space.
"""
import gzip
import os
import struct
import zlib
from pathlib import Path
from typing import Sequence

import numpy as np
import SimpleITK as sitk

from vfnet.errors import DatasetError
from vfnet.fileio import atomic_path, read_json, write_json

ORIENTATION_CODES = set("LRAPSI")


def read_image(path: str | os.PathLike, what: str = "image") -> sitk.Image:
    """Read a 3D image file or DICOM series folder; raise DatasetError naming the file on any problem."""
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"{what} {path} does not exist.")
    try:
        if path.is_dir():
            series = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(path))
            if not series:
                raise DatasetError(f"{what} {path} is a folder without a DICOM series.")
            image = sitk.ReadImage(series)
        else:
            image = sitk.ReadImage(str(path))
            _check_nifti_complete(path, what)
    except RuntimeError as error:
        first_line = str(error).strip().splitlines()[-1] if str(error).strip() else "unknown reason"
        raise DatasetError(f"{what} {path} cannot be read as an image ({first_line[:200]}).") from None
    if image.GetDimension() != 3:
        raise DatasetError(f"{what} {path} is {image.GetDimension()}D; a 3D image is required.")
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise DatasetError(f"{what} {path} has {image.GetNumberOfComponentsPerPixel()} components per voxel; "
                           f"a scalar image is required.")
    if min(image.GetSize()) < 1 or min(image.GetSpacing()) <= 0:
        raise DatasetError(f"{what} {path} has an invalid size {image.GetSize()} or spacing {image.GetSpacing()}.")
    return image


def check_finite(image: sitk.Image, path: str | os.PathLike, what: str = "image") -> None:
    """NaN or infinite voxels are an error. ITK's NIfTI reader silently replaces them with 0 (measured with
    SimpleITK 2.5: NaN, +inf and -inf all read back as 0.0), so a float NIfTI's stored voxels are scanned too."""
    array = sitk.GetArrayViewFromImage(image)
    count = int(np.count_nonzero(~np.isfinite(array))) if np.issubdtype(array.dtype, np.floating) else 0
    if not count and Path(path).is_file():
        count = nifti_nonfinite_count(Path(path))
    if count:
        raise DatasetError(f"{what} {path} contains {count} NaN or infinite voxel(s); replace them (e.g. with "
                           f"-1024 HU, air) and save the image again.")


def nifti_nonfinite_count(path: Path, chunk_voxels: int = 1 << 22) -> int:
    """NaN/inf voxels as stored in a float .nii/.nii.gz (0 for other files); read in chunks, so memory stays small."""
    name = path.name.lower()
    if not name.endswith((".nii", ".nii.gz")):
        return 0
    opener = gzip.open if name.endswith(".gz") else open
    try:
        with opener(path, "rb") as handle:
            layout = _nifti_float_layout(handle.read(540))
            if layout is None:
                return 0
            dtype, offset, voxels = layout
            handle.seek(offset)
            count = 0
            while voxels > 0:
                chunk = handle.read(min(voxels, chunk_voxels) * dtype.itemsize)
                if not chunk:
                    break
                values = np.frombuffer(chunk[:len(chunk) - len(chunk) % dtype.itemsize], dtype=dtype)
                count += int(np.count_nonzero(~np.isfinite(values)))
                voxels -= values.size
            return count
    except (OSError, EOFError, zlib.error):
        return 0   # an unreadable file was already reported by read_image


def _nifti_float_layout(header: bytes) -> tuple[np.dtype, int, int] | None:
    """(voxel dtype, vox_offset, voxel count) of a float32/float64 NIfTI-1 or NIfTI-2 header, else None."""
    floats = {16: "f4", 64: "f8"}   # NIfTI datatype codes
    for order in "<>":
        if len(header) >= 348 and struct.unpack(order + "i", header[:4])[0] == 348:
            datatype = struct.unpack(order + "h", header[70:72])[0]
            dims = struct.unpack(order + "8h", header[40:56])
            offset = int(struct.unpack(order + "f", header[108:112])[0])
            break
        if len(header) >= 540 and struct.unpack(order + "i", header[:4])[0] == 540:
            datatype = struct.unpack(order + "h", header[12:14])[0]
            dims = struct.unpack(order + "8q", header[16:80])
            offset = struct.unpack(order + "q", header[168:176])[0]
            break
    else:
        return None
    if datatype not in floats or not 1 <= dims[0] <= 7:
        return None
    return np.dtype(order + floats[datatype]), offset, int(np.prod(dims[1:dims[0] + 1]))


def write_image(image: sitk.Image, target: str | os.PathLike, compress: bool = True) -> None:
    """Write atomically; the temporary file keeps the ending so SimpleITK picks the right format."""
    target = Path(target)
    ending = "".join(target.suffixes[-2:]) if target.name.endswith(".nii.gz") else target.suffix
    with atomic_path(target, suffix=ending) as temporary:
        sitk.WriteImage(image, str(temporary), useCompression=compress)


def orientation_code(image: sitk.Image) -> str:
    """Three letters naming where each image axis points, e.g. 'LPS' (identity direction) or 'PIR'."""
    return sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(image.GetDirection())


def read_centroids(path: str | os.PathLike, image: sitk.Image) -> dict[int, tuple[float, float, float]]:
    """Read a VerSe centroid JSON and return {label: physical point (x, y, z) in mm, ITK/LPS world}.

    The file lists voxel coordinates X, Y, Z in an image whose axes point as its first entry's
    `direction` says (e.g. ["P", "I", "R"]). They are mapped through `image` reoriented to those codes,
    so a centroid file written for any orientation of the same scan lands on the same physical point.
    """
    path = Path(path)
    entries = read_json(path, "centroid file")
    if not isinstance(entries, list) or not entries:
        raise DatasetError(f"centroid file {path} must be a JSON list whose first entry is {{'direction': [...]}}.")
    header = entries[0]
    codes = header.get("direction") if isinstance(header, dict) else None
    if (not isinstance(codes, list) or len(codes) != 3 or not all(isinstance(c, str) for c in codes)
            or not set(codes) <= ORIENTATION_CODES
            or len({c.replace("R", "L").replace("A", "P").replace("I", "S") for c in codes}) != 3):
        raise DatasetError(f"centroid file {path} lacks a valid first entry {{'direction': [three axis codes]}}; "
                           f"found {header!r}.")
    oriented = _geometry_in_orientation(image, "".join(codes))
    size = oriented.GetSize()
    centroids: dict[int, tuple[float, float, float]] = {}
    for entry in entries[1:]:
        if not isinstance(entry, dict) or not {"label", "X", "Y", "Z"} <= set(entry):
            raise DatasetError(f"centroid file {path}: entry {entry!r} lacks label, X, Y or Z.")
        try:
            label = int(entry["label"])
            index = tuple(float(entry[axis]) for axis in ("X", "Y", "Z"))
        except (TypeError, ValueError):
            raise DatasetError(f"centroid file {path}: entry {entry!r} has a non-numeric label or coordinate.") \
                from None
        if not all(np.isfinite(index)) or any(c < -0.5 or c > s - 0.5 for c, s in zip(index, size)):
            raise DatasetError(f"centroid file {path}: vertebra {label} at voxel {index} lies outside the image "
                               f"of size {size}.")
        centroids[label] = oriented.TransformContinuousIndexToPhysicalPoint(index)
    return centroids


def write_centroids(path: str | os.PathLike, centroids: dict[int, Sequence[float]], image: sitk.Image) -> None:
    """Write {label: physical point (x, y, z) mm} as a VerSe centroid JSON in `image`'s voxel coordinates along LPS
    axes: what `read_centroids(path, image)` reads back."""
    oriented = _geometry_in_orientation(image, "LPS")
    entries: list[dict] = [{"direction": ["L", "P", "S"]}]
    for label, point in sorted(centroids.items()):
        x, y, z = oriented.TransformPhysicalPointToContinuousIndex([float(value) for value in point])
        entries.append({"label": int(label), "X": x, "Y": y, "Z": z})
    write_json(path, entries)


def _geometry_in_orientation(image: sitk.Image, codes: str) -> sitk.Image:
    """An empty image with `image`'s physical extent whose axes point as `codes` says (no voxel data copied)."""
    placeholder = sitk.Image(image.GetSize(), sitk.sitkUInt8)
    placeholder.CopyInformation(image)
    return sitk.DICOMOrient(placeholder, codes)


def _check_nifti_complete(path: Path, what: str) -> None:
    """ITK's NIfTI reader fills a truncated .nii/.nii.gz with zeros or garbage instead of failing; compare the
    voxel bytes the header promises with the file size (.nii) or the gzip trailer's uncompressed size (.nii.gz)."""
    name = path.name.lower()
    if not name.endswith((".nii", ".nii.gz")):
        return
    compressed = name.endswith(".gz")
    try:
        with (gzip.open(path, "rb") if compressed else open(path, "rb")) as handle:
            header = handle.read(540)
        expected = _nifti_total_bytes(header)
        if expected is None:
            return
        with open(path, "rb") as handle:
            if compressed:
                handle.seek(-4, os.SEEK_END)
                # ISIZE: uncompressed length modulo 2**32; anything past the voxels is at most a little padding.
                complete = (struct.unpack("<I", handle.read(4))[0] - expected) % 2**32 < 2**20
            else:
                complete = os.fstat(handle.fileno()).st_size >= expected
    except (OSError, EOFError, zlib.error, struct.error):
        complete = False
    if not complete:
        raise DatasetError(f"{what} {path} is truncated: its header promises more voxel data than the file holds.")


def _nifti_total_bytes(header: bytes) -> int | None:
    """vox_offset + voxel bytes from a NIfTI-1 or NIfTI-2 header (either byte order); None if not recognised."""
    for order in "<>":
        if len(header) >= 348 and struct.unpack(order + "i", header[:4])[0] == 348:
            dims = struct.unpack(order + "8h", header[40:56])
            bitpix = struct.unpack(order + "h", header[72:74])[0]
            offset = int(struct.unpack(order + "f", header[108:112])[0])
            break
        if len(header) >= 540 and struct.unpack(order + "i", header[:4])[0] == 540:
            bitpix = struct.unpack(order + "h", header[14:16])[0]
            dims = struct.unpack(order + "8q", header[16:80])
            offset = struct.unpack(order + "q", header[168:176])[0]
            break
    else:
        return None
    if not 1 <= dims[0] <= 7:
        return None
    return offset + int(np.prod(dims[1:dims[0] + 1])) * bitpix // 8
