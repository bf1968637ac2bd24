"""Centroid input, shown to the network during training.

`vfnet_predict --centroids` has no mask: the crop is centred on the given centroid, its target channel is an
ellipsoid of the level's typical body size (`preprocessing.target_channel.centroid_channel`) and there is no morphometry.
A model trained on real masks only had never seen that input (issue 13: macro-F1 0.67 from masks, 0.32 from
centroids, most normal vertebrae called fractured). So, in a random part of every batch, each view's mask channel
is replaced by that same ellipsoid, drawn around the crop centre moved by a small random offset (a centroid is
an annotator's or a model's point, not the exact centre of mass the training crop is centred on), and the
view's morphometric inputs are blanked, exactly as prediction from centroids leaves them. SupCon then also
pulls the mask view and the centroid view of one vertebra together.
"""
from typing import Any, Sequence

import numpy as np
import torch

from vfnet.preprocessing.target_channel import centroid_channel
from vfnet.typical_sizes import typical_body_size_mm


class CentroidInput:
    def __init__(self, properties: Sequence[dict[str, Any]], crop_size: Sequence[int], spacing: Sequence[float],
                 probability: float, jitter_mm: float):
        self.diameters = [typical_body_size_mm(int(p["vertebra"])) for p in properties]
        self.crop_size = [int(n) for n in crop_size]
        self.spacing = [float(s) for s in spacing]
        self.probability = float(probability)
        self.jitter_mm = float(jitter_mm)

    @classmethod
    def from_plan(cls, properties: Sequence[dict[str, Any]], plans: dict[str, Any]) -> "CentroidInput | None":
        probability = float(plans["training"].get("centroid_input_probability", 0.0))
        if probability <= 0:
            return None
        preprocessing = plans["preprocessing"]
        return cls(properties, preprocessing["crop_size"], preprocessing["target_spacing"], probability,
                   float(plans["training"].get("centroid_jitter_mm", 0.0)))

    def __call__(self, images: torch.Tensor, morphometry: torch.Tensor | None, indices: np.ndarray
                 ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """One view of a batch (`images` (B, C, Z, Y, X), the last channel the target's mask) with a random part
        turned into centroid input; the inputs are not modified."""
        chosen = torch.nonzero(torch.rand(len(indices)) < self.probability).flatten().tolist()
        if not chosen:
            return images, morphometry
        images = images.clone()
        for row in chosen:
            offset = (torch.randn(3) * self.jitter_mm).tolist()
            channel = centroid_channel(self.crop_size, self.spacing, self.diameters[int(indices[row])], offset)
            images[row, -1] = torch.from_numpy(channel).to(images)
        if morphometry is not None:
            morphometry = morphometry.clone()
            morphometry[torch.tensor(chosen, device=morphometry.device)] = 0
        return images, morphometry
