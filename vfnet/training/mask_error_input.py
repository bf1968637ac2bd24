"""Morphometry from masks a voxel or two off, shown to the network during training.

The training masks are exact; the masks users bring (TotalSegmentator, nnU-Net) are a voxel or two off, and
the measured height ratios move with them (two voxels are 6 mm on 3 mm slices). Trained on exact ratios only,
the network trusted them fully: on the phantom benchmark masks eroded or dilated by two voxels cost macro-F1
0.13-0.15 against perfect masks. Preprocessing therefore also measures every training vertebra on its mask
degraded in the planned ways (`preprocessing.morphometry_mask_errors`, preprocessing/measurement.py), and in a
random part of every batch (`training.mask_error_morphometry_probability`) a vertebra's morphometric inputs are
replaced by those of one of them, drawn at random. The image channels show the same vertebra, so the network
can learn when the ratios deserve less trust. Measured alone it changed little (two voxels: -0.012 / +0.025);
measuring such masks better did more (documentation/benchmarks.md, "Issue 10, sixth session").
"""
from typing import Any

import numpy as np
import torch

from vfnet.morphometry.genant import morphometry_inputs
from vfnet.planning.plans import morphometric_features
from vfnet.training.data import SampleSet


class MaskErrorMorphometry:
    def __init__(self, variants: np.ndarray, probability: float):
        self.variants = torch.from_numpy(np.ascontiguousarray(variants, dtype=np.float32))   # (N, V, 2F)
        self.probability = float(probability)

    @classmethod
    def from_plan(cls, samples: SampleSet, plans: dict[str, Any]) -> "MaskErrorMorphometry | None":
        names = list(plans["preprocessing"].get("morphometry_mask_errors", []))
        probability = float(plans["training"].get("mask_error_morphometry_probability", 0.0))
        features = morphometric_features(plans)
        if not names or probability <= 0 or not features or samples.morphometry is None:
            return None
        variants = [morphometry_inputs([{"morphometry": (p.get("morphometry_mask_errors") or {}).get(name)}
                                        for p in samples.properties], features) for name in names]
        return cls(np.stack(variants, axis=1), probability)

    def __call__(self, morphometry: torch.Tensor, indices: np.ndarray) -> torch.Tensor:
        """The batch's morphometric inputs (rows in the order of `indices`) with a random part swapped for the
        measurement on a degraded mask; the input is not modified."""
        rows = torch.nonzero(torch.rand(len(indices)) < self.probability).flatten()
        if not len(rows):
            return morphometry
        choice = torch.randint(self.variants.shape[1], (len(rows),))
        samples = torch.as_tensor(np.asarray(indices))[rows]
        morphometry = morphometry.clone()
        morphometry[rows.to(morphometry.device)] = self.variants[samples, choice].to(morphometry)
        return morphometry
