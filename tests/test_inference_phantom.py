"""A tiny spine phantom for the predictor tests, and a check that its orientation variants are one scan."""
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from vfnet.dataset.image_io import orientation_code, write_image

PHANTOM_LABELS = (20, 21, 22)  # L1, L2, L3 (VerSe ids); L1 is the most superior


def phantom(spacing: float = 2.0, size_xyz: tuple[int, int, int] = (24, 20, 44)) -> tuple[sitk.Image, sitk.Image]:
    """An LPS CT (HU) and VerSe mask: three box 'vertebrae' L3 (bottom), L2, L1 (top) along z, discs between."""
    ct = np.full(size_xyz[::-1], -100.0, dtype=np.float32)
    mask = np.zeros(size_xyz[::-1], dtype=np.uint8)
    rng = np.random.default_rng(0)
    for index, label in enumerate(sorted(PHANTOM_LABELS, reverse=True)):  # L3 lowest z (inferior)
        z0 = 6 + index * 11
        ct[z0:z0 + 8, 5:15, 6:18] = 300.0 + 100 * index
        ct[z0:z0 + 8, 5:15, 6:9] += 200.0  # left-right asymmetry so mirroring matters
        mask[z0:z0 + 8, 5:15, 6:18] = label
    ct += rng.normal(0, 5, ct.shape).astype(np.float32)
    images = []
    for array, pixel in ((ct, sitk.sitkFloat32), (mask, sitk.sitkUInt8)):
        image = sitk.Cast(sitk.GetImageFromArray(array), pixel)
        image.SetSpacing((spacing,) * 3)
        image.SetOrigin((-20.0, 10.0, -40.0))
        images.append(image)
    return images[0], images[1]


def write_phantom(folder: Path, case_id: str, orientation: str = "LPS", mask_name: str | None = None,
                  ending: str = ".nii.gz") -> tuple[Path, Path]:
    """Write `<case>_0000<ending>` and its mask (default `<case><ending>`) in the given storage orientation."""
    ct, mask = phantom()
    ct, mask = sitk.DICOMOrient(ct, orientation), sitk.DICOMOrient(mask, orientation)
    ct_path = folder / f"{case_id}_0000{ending}"
    mask_path = folder / (mask_name or f"{case_id}{ending}")
    write_image(ct, ct_path)
    write_image(mask, mask_path)
    return ct_path, mask_path


def test_orientation_variants_hold_the_same_physical_scan(tmp_path):
    centres = {}
    for orientation in ("LPS", "RAS", "PIR"):
        ct_path, mask_path = write_phantom(tmp_path / orientation, "case", orientation)
        mask = sitk.ReadImage(str(mask_path))
        assert orientation_code(mask) == orientation
        statistics = sitk.LabelShapeStatisticsImageFilter()
        statistics.Execute(mask)
        centres[orientation] = np.array([statistics.GetCentroid(label) for label in PHANTOM_LABELS])
    np.testing.assert_allclose(centres["RAS"], centres["LPS"], atol=1e-4)
    np.testing.assert_allclose(centres["PIR"], centres["LPS"], atol=1e-4)
    # L1 (20) lies above L3 (22): larger physical z (superior in LPS).
    assert centres["LPS"][0][2] > centres["LPS"][2][2]
