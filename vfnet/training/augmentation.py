"""Batched data augmentation in torch, run inside the training process.

Chosen by measurement on the 2-core development machine (batch of 16, 2 channels, 48³, float32, 2 threads):
rotation + isotropic scaling here 0.08 s per batch (0.10 s with all intensity transforms at their default
probabilities) against 0.17 s for batchgenerators' SpatialTransform (linear, rotation + scaling only; the issue
measured 0.24 s linear / 1.0 s cubic), for a ~0.5 s training step. A second worker process on two cores slowed
training 2-7×, so augmentation runs in the training process; on a GPU it runs on the device.

The label is a height ratio, so the spatial transform is rigid + ISOTROPIC scaling only (computed in mm, so a
non-cubic crop or anisotropic spacing does not turn a rotation into a shear), and mirroring is left-right only
(array axis 2). The mask channels (the last `mask_channels` channels) follow the same spatial transform
(linear, then thresholded at 0.5) and never receive intensity augmentation; they get their own errors instead
(one-voxel erosion or dilation, small shifts), as a segmentation model's masks have them.
"""
import math
from typing import Any, Sequence

import torch
import torch.nn.functional as F

# Per-sample probabilities used where the plan's "probabilities" does not name a transform (nnU-Net-like).
DEFAULT_PROBABILITIES = {"rotation": 0.2, "scale": 0.2, "mirror": 0.5, "gamma": 0.3, "brightness": 0.15,
                         "contrast": 0.15, "noise": 0.1, "blur": 0.2, "low_resolution": 0.25}


class BatchAugmenter:
    def __init__(self, config: dict[str, Any], spacing: Sequence[float] = (1.0, 1.0, 1.0), mask_channels: int = 1):
        self.config = config
        self.probabilities = {**DEFAULT_PROBABILITIES, **config.get("probabilities", {})}
        self.spacing_zyx = [float(s) for s in spacing]
        self.mask_channels = mask_channels

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        """Augment a (B, C, Z, Y, X) float batch; returns a new tensor, parameters drawn from torch's RNG."""
        ct_count = batch.shape[1] - self.mask_channels
        ct, mask = batch[:, :ct_count], batch[:, ct_count:]
        ct, mask = self._spatial(ct, mask)
        ct = self._intensity(ct)
        mask = self._mask_errors(mask)
        return torch.cat([ct, mask], dim=1)

    # --- spatial -------------------------------------------------------------------------------------------
    # Random parameters are drawn on the host on purpose, whatever device the batch is on: the per-sample
    # decisions (`any()`, index lists) then need no GPU synchronisation, the draws are the same stream on every
    # device, and only the few per-sample values that meet the batch are copied to its device.
    def _chosen(self, name: str, count: int) -> torch.Tensor:
        return torch.rand(count) < self.probabilities[name]

    def _uniform(self, low: float, high: float, count: int) -> torch.Tensor:
        return low + (high - low) * torch.rand(count)

    def _spatial(self, ct: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        count = ct.shape[0]
        degrees = self.config.get("rotation_degrees", [0, 0, 0])
        rotate = self._chosen("rotation", count)
        angles = torch.stack([self._uniform(-d, d, count) for d in degrees], dim=1) * math.pi / 180  # z, y, x
        angles[~rotate] = 0
        low, high = self.config.get("scale_range", [1.0, 1.0])
        scales = torch.where(self._chosen("scale", count), self._uniform(low, high, count), torch.ones(count))
        moved = torch.nonzero((angles != 0).any(dim=1) | (scales != 1)).flatten()
        if len(moved):  # resample only the samples that move: about half of them at the planned probabilities
            theta = self._theta(angles[moved], scales[moved], ct.shape[2:]).to(ct.device, ct.dtype)
            index = moved.to(ct.device)
            grid = F.affine_grid(theta, [len(moved), *ct.shape[1:]], align_corners=False)
            ct, mask = ct.clone(), mask.clone()
            ct[index] = F.grid_sample(ct[index], grid, mode="bilinear", padding_mode="border", align_corners=False)
            mask[index] = (F.grid_sample(mask[index], grid, mode="bilinear", padding_mode="zeros",
                                         align_corners=False) > 0.5).to(mask.dtype)
        if self.config.get("mirror_left_right", False):
            flip = self._chosen("mirror", count)
            if bool(flip.any()):
                flip = flip.to(ct.device)
                ct = torch.where(flip[:, None, None, None, None], ct.flip(-1), ct)
                mask = torch.where(flip[:, None, None, None, None], mask.flip(-1), mask)
        return ct, mask

    def _theta(self, angles_zyx: torch.Tensor, scales: torch.Tensor, shape_zyx: Sequence[int]) -> torch.Tensor:
        """affine_grid matrices (B, 3, 4) mapping output to input in normalised (x, y, z) coordinates.

        In mm around the crop centre the input point is R·p / s (rotation, isotropic zoom by s); normalised
        coordinates are mm / half-extent per axis, so theta = H⁻¹ (R / s) H with H = diag(half-extents).
        """
        half = torch.tensor([n * s / 2 for n, s in zip(shape_zyx, self.spacing_zyx)][::-1])  # x, y, z
        rotation = _rotation_xyz(angles_zyx[:, 2], angles_zyx[:, 1], angles_zyx[:, 0])
        linear = rotation / scales[:, None, None]
        linear = linear * half[None, None, :] / half[None, :, None]
        return torch.cat([linear, torch.zeros(len(scales), 3, 1)], dim=2)

    # --- mask errors (mask channels only) -----------------------------------------------------------------------
    def _mask_errors(self, mask: torch.Tensor) -> torch.Tensor:
        """A segmentation model's masks are a voxel or two off: erode or dilate by 1 to `mask_morphology_voxels`
        voxels (default 1), shift by up to `mask_shift_voxels`, so the network does not lean on the exact outline
        of the mask channel."""
        count = mask.shape[0]
        if "mask_morphology" in self.probabilities:
            chosen = torch.nonzero(self._chosen("mask_morphology", count)).flatten()
            dilate = torch.rand(len(chosen)) < 0.5
            largest = int(self.config.get("mask_morphology_voxels", 1))
            radii = (torch.randint(1, largest + 1, (len(chosen),)) if largest > 1 else   # no draw: same stream
                     torch.ones(len(chosen), dtype=torch.long))
            if len(chosen):
                mask = mask.clone()
                for grow in (True, False):
                    for radius in torch.unique(radii).tolist():
                        subset = chosen[(dilate == grow) & (radii == radius)]
                        if len(subset):
                            index = subset.to(mask.device)
                            mask[index] = (_grown(mask[index], radius) if grow else
                                           1.0 - _grown(1.0 - mask[index], radius))
        shift = int(self.config.get("mask_shift_voxels", 0))
        if shift > 0 and "mask_shift" in self.probabilities:
            chosen = torch.nonzero(self._chosen("mask_shift", count)).flatten().tolist()
            if chosen:
                mask = mask.clone()
                for index in chosen:
                    offsets = [int(v) for v in torch.randint(-shift, shift + 1, (3,))]
                    mask[index] = torch.roll(mask[index], shifts=offsets, dims=(1, 2, 3))
        return mask

    # --- intensity (CT channels only) ----------------------------------------------------------------------
    def _intensity(self, ct: torch.Tensor) -> torch.Tensor:
        count = ct.shape[0]
        config = self.config
        ct = ct.clone()  # the per-sample steps below write in place; never into the caller's batch
        per_sample = (count, 1, 1, 1, 1)
        if "brightness_range" in config:
            factor = self._uniform(*config["brightness_range"], count)
            factor[~self._chosen("brightness", count)] = 1
            ct = ct * factor.view(per_sample).to(ct)
        if "contrast_range" in config:
            factor = self._uniform(*config["contrast_range"], count)
            factor[~self._chosen("contrast", count)] = 1
            mean = ct.mean(dim=(1, 2, 3, 4), keepdim=True)
            ct = (ct - mean) * factor.view(per_sample).to(ct) + mean
        if "gamma_range" in config:
            ct = self._gamma(ct, config["gamma_range"])
        if config.get("noise_std", 0) > 0:
            std = self._uniform(0, config["noise_std"], count)
            std[~self._chosen("noise", count)] = 0
            ct = ct + torch.randn_like(ct) * std.view(per_sample).to(ct)
        if "blur_sigma" in config:
            sigmas = self._uniform(*config["blur_sigma"], count)
            for index in torch.nonzero(self._chosen("blur", count)).flatten().tolist():
                ct[index] = _gaussian_blur(ct[index], float(sigmas[index]))
        if "low_resolution_zoom" in config:
            zooms = self._uniform(*config["low_resolution_zoom"], count)
            for index in torch.nonzero(self._chosen("low_resolution", count)).flatten().tolist():
                ct[index] = _simulate_low_resolution(ct[index], float(zooms[index]))
        return ct

    def _gamma(self, ct: torch.Tensor, gamma_range: Sequence[float]) -> torch.Tensor:
        count = ct.shape[0]
        chosen = torch.nonzero(self._chosen("gamma", count)).flatten().tolist()
        if not chosen:
            return ct
        # Gamma on [0, 1]: below 1 draw from [low, 1), above from [1, high] with equal chance (nnU-Net's choice).
        low, high = gamma_range
        for index in chosen:
            gamma = float(self._uniform(low, 1.0, 1)) if torch.rand(1) < 0.5 and low < 1 else float(
                self._uniform(max(low, 1.0), high, 1))
            sample = ct[index]
            minimum, maximum = sample.min(), sample.max()
            extent = (maximum - minimum).clamp_min(1e-6)
            ct[index] = ((sample - minimum) / extent) ** gamma * extent + minimum
        return ct


def _grown(volume: torch.Tensor, radius: int) -> torch.Tensor:
    """(2r+1)^3 box maximum filter of (B, C, Z, Y, X), as three 1-D passes (a box maximum is separable)."""
    width = 2 * int(radius) + 1
    for kernel in ((width, 1, 1), (1, width, 1), (1, 1, width)):
        volume = F.max_pool3d(volume, kernel, stride=1, padding=tuple(k // 2 for k in kernel))
    return volume


def drop_morphometry(morphometry: torch.Tensor, probability: float) -> torch.Tensor:
    """Blank the whole morphometric input (values and availability) of a random fraction of the rows, so the
    network also learns to grade without it, as it must for centroid input or an unmeasurable body."""
    if probability <= 0:
        return morphometry
    keep = (torch.rand(morphometry.shape[0], 1) >= probability).to(morphometry)
    return morphometry * keep


def _rotation_xyz(about_x: torch.Tensor, about_y: torch.Tensor, about_z: torch.Tensor) -> torch.Tensor:
    """Batched rotation matrices Rz·Ry·Rx acting on (x, y, z) column vectors."""
    def rotation(angle: torch.Tensor, first: int, second: int) -> torch.Tensor:
        matrix = torch.eye(3).repeat(len(angle), 1, 1)
        cos, sin = torch.cos(angle), torch.sin(angle)
        matrix[:, first, first], matrix[:, first, second] = cos, -sin
        matrix[:, second, first], matrix[:, second, second] = sin, cos
        return matrix

    return rotation(about_z, 0, 1) @ rotation(about_y, 0, 2) @ rotation(about_x, 1, 2)


def _gaussian_blur(volume: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of a (C, Z, Y, X) volume, sigma in voxels, reflecting at the border."""
    radius = max(1, int(math.ceil(3 * sigma)))
    offsets = torch.arange(-radius, radius + 1, dtype=volume.dtype, device=volume.device)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    kernel = kernel / kernel.sum()
    channels = volume.shape[0]
    out = volume[:, None]  # (C, 1, Z, Y, X): channels blurred independently
    for axis in range(3):
        shape = [1, 1, 1, 1, 1]
        shape[2 + axis] = kernel.numel()
        padding = [0, 0, 0, 0, 0, 0]
        padding[2 * (2 - axis)] = padding[2 * (2 - axis) + 1] = radius  # F.pad lists the last axis first
        out = F.conv3d(F.pad(out, padding, mode="replicate"), kernel.view(shape))
    return out.reshape(channels, *volume.shape[1:])


def _simulate_low_resolution(volume: torch.Tensor, zoom: float) -> torch.Tensor:
    """Downsample by `zoom` (nearest) and upsample back (trilinear), as a coarser scan would look."""
    size = volume.shape[1:]
    small = [max(1, int(round(n * zoom))) for n in size]
    coarse = F.interpolate(volume[None], size=small, mode="nearest")
    return F.interpolate(coarse, size=list(size), mode="trilinear", align_corners=False)[0]
