"""Genant's thresholds as a layer: log-probabilities of the four grades from the measured height loss.

A cumulative-link (ordinal) model: P(grade >= k) = sigmoid((loss - t_k) / width) with t = Genant's 20 / 25 / 40 %
thresholds and a width of a few per cent, both learnable. Its output is added to the CNN's logits, so the network
starts from the radiologist's rule (macro-F1 0.73 on the phantom benchmark by itself) and learns what the image
adds, instead of relearning a threshold from a few dozen mild fractures. Unavailable measurements (no mask, body
cut by the field of view) contribute nothing.
"""
import math
from typing import Sequence

import torch
from torch import nn


class GenantPrior(nn.Module):
    def __init__(self, feature_index: int, num_features: int, thresholds: Sequence[float], width: float):
        super().__init__()
        self.feature_index = int(feature_index)
        self.num_features = int(num_features)
        self.thresholds = nn.Parameter(torch.tensor([float(t) for t in thresholds]))
        self.log_width = nn.Parameter(torch.tensor(math.log(float(width))))
        self.weight = nn.Parameter(torch.tensor(1.0))

    def forward(self, morphometry: torch.Tensor) -> torch.Tensor:
        loss = morphometry[:, self.feature_index:self.feature_index + 1]
        available = morphometry[:, self.num_features + self.feature_index:self.num_features + self.feature_index + 1]
        at_least = torch.sigmoid((loss - torch.sort(self.thresholds).values) / self.log_width.exp())
        ones, zeros = torch.ones_like(loss), torch.zeros_like(loss)
        cumulative = torch.cat([ones, at_least, zeros], dim=1)
        probabilities = (cumulative[:, :-1] - cumulative[:, 1:]).clamp_min(1e-4)
        return self.weight * torch.log(probabilities) * available
