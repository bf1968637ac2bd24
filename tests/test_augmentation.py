import torch

from vfnet.training.augmentation import BatchAugmenter

INTENSITY = {"gamma_range": [0.7, 1.5], "brightness_range": [0.8, 1.2], "contrast_range": [0.8, 1.2],
             "noise_std": 0.1, "blur_sigma": [0.5, 1.0], "low_resolution_zoom": [0.5, 0.8]}
ALL_ON = {name: 1.0 for name in ("rotation", "scale", "mirror", "gamma", "brightness", "contrast", "noise", "blur",
                                 "low_resolution")}


def _box_batch(count: int, shape=(32, 32, 32), box=(16, 8, 8)) -> torch.Tensor:
    """CT channel + mask channel of a centred box of `box` voxels (z, y, x)."""
    batch = torch.zeros(count, 2, *shape)
    slices = tuple(slice((n - b) // 2, (n - b) // 2 + b) for n, b in zip(shape, box))
    batch[(slice(None), slice(None), *slices)] = 1.0
    return batch


def _extents(mask: torch.Tensor) -> list[int]:
    """Number of slices along z, y, x that contain mask voxels."""
    return [int(mask.any(dim=tuple(d for d in range(3) if d != axis)).sum()) for axis in range(3)]


def _soft_extents(volume: torch.Tensor) -> list[float]:
    """Sub-voxel box size per axis: total mass / mass of the fullest slice (exact for an axis-aligned box)."""
    sizes = []
    for axis in range(3):
        profile = volume.sum(dim=tuple(d for d in range(3) if d != axis))
        sizes.append(float(profile.sum() / profile.max()))
    return sizes


def test_isotropic_scaling_keeps_the_cranio_caudal_ratio():
    torch.manual_seed(0)
    augmenter = BatchAugmenter({"scale_range": [0.7, 1.3], "probabilities": ALL_ON})
    out = augmenter(_box_batch(12, shape=(40, 40, 40), box=(24, 12, 12)))
    heights = []
    for sample in out[:, 0]:  # the CT channel: linear interpolation keeps sub-voxel sizes
        z, y, x = _soft_extents(sample)
        heights.append(z)
        assert abs(z / x - 2.0) < 0.1 and abs(z / y - 2.0) < 0.1
    assert max(heights) - min(heights) > 4  # the scaling really varied the size
    for sample in out[:, 1]:  # the thresholded mask agrees within a voxel
        z, y, x = _extents(sample > 0.5)
        assert abs(z - 2 * x) <= 2 and abs(z - 2 * y) <= 2


def test_rotation_is_rigid_in_mm_on_non_cubic_anisotropic_grids():
    # 2 mm slices on a non-cubic grid: a sphere of radius 7 mm must stay a sphere (no shear, no stretch).
    torch.manual_seed(1)
    spacing = (2.0, 1.0, 1.0)
    shape = (16, 32, 24)
    z, y, x = torch.meshgrid(*[(torch.arange(n) - (n - 1) / 2) * s for n, s in zip(shape, spacing)], indexing="ij")
    sphere = ((z ** 2 + y ** 2 + x ** 2) <= 49).float()
    batch = torch.stack([sphere, sphere])[None].repeat(6, 1, 1, 1, 1)
    augmenter = BatchAugmenter({"rotation_degrees": [40, 40, 40], "probabilities": ALL_ON}, spacing=spacing)
    out = augmenter(batch)
    assert not torch.equal(out[:, 1], batch[:, 1])
    coordinates = (z, y, x)

    def spreads_mm(volume):  # standard deviation of the sphere's mass along z, y, x in mm
        mass = volume.sum()
        return [float(((c - (volume * c).sum() / mass) ** 2 * volume).sum() / mass) ** 0.5 for c in coordinates]

    before = spreads_mm(sphere)
    for sample in out[:, 0]:
        after = spreads_mm(sample)
        assert all(abs(a - b) < 0.15 for a, b in zip(after, before)), (before, after)


def test_mask_stays_binary_and_gets_no_intensity_augmentation():
    torch.manual_seed(2)
    batch = _box_batch(4)
    batch[:, 0] += 0.1 * torch.randn(4, 32, 32, 32)
    original = batch.clone()
    out = BatchAugmenter({**INTENSITY, "probabilities": ALL_ON})(batch)
    assert torch.equal(out[:, 1], batch[:, 1])  # no spatial transform configured: mask untouched
    assert not torch.allclose(out[:, 0], batch[:, 0])
    assert torch.equal(batch, original)  # the caller's batch is not modified
    spatial = BatchAugmenter({**INTENSITY, "rotation_degrees": [15, 10, 10], "scale_range": [0.9, 1.1],
                              "probabilities": ALL_ON})(batch)
    assert set(spatial[:, 1].unique().tolist()) <= {0.0, 1.0}


def test_mirroring_flips_left_right_only():
    batch = torch.randn(3, 2, 8, 10, 12)
    out = BatchAugmenter({"mirror_left_right": True, "probabilities": ALL_ON})(batch)
    assert torch.equal(out, batch.flip(-1))


def test_mask_errors_erode_dilate_and_shift_only_the_mask_channel():
    torch.manual_seed(0)
    batch = torch.zeros(8, 2, 16, 16, 16)
    batch[:, 0] = torch.randn(8, 16, 16, 16)
    batch[:, 1, 5:11, 5:11, 5:11] = 1.0
    config = {"mask_shift_voxels": 1, "probabilities": {"mask_morphology": 1.0, "mask_shift": 0.0}}
    augmenter = BatchAugmenter(config)
    out = augmenter(batch)
    torch.testing.assert_close(out[:, 0], batch[:, 0])           # the CT is untouched
    sizes = out[:, 1].sum(dim=(1, 2, 3))
    assert set(torch.unique(out[:, 1]).tolist()) <= {0.0, 1.0}
    assert set(sizes.tolist()) <= {4.0 ** 3, 8.0 ** 3} and len(set(sizes.tolist())) == 2   # eroded and dilated
    shifted = BatchAugmenter({"mask_shift_voxels": 1, "probabilities": {"mask_shift": 1.0}})(batch)
    assert torch.equal(shifted[:, 1].sum(dim=(1, 2, 3)), batch[:, 1].sum(dim=(1, 2, 3)))
