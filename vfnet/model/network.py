"""The 3D residual encoder classifier, built from the plan's `network` section.

Layout: strided stem (early downsampling, because full-resolution convolutions dominate CPU cost), residual
stages, global average pooling, then two heads on the pooled features: a linear classifier for the four Genant
grades and an MLP projection head whose L2-normalised output feeds the supervised contrastive loss. When the plan
lists `morphometric_features`, a small branch maps the measured Genant ratios into the classifier's input, and
`genant_prior` adds Genant's thresholds on the measured height loss to the logits (genant_prior.py). With
`image_head`, a third linear head grades from the pooled CNN features alone; it is trained (training.image_ce_weight)
but never predicts: it makes the encoder learn what the image shows, which the prior would otherwise leave it little
reason to (documentation/benchmarks.md, twentieth session).
GroupNorm keeps the network independent of the batch size (balanced batches are small and the last stage can
be 1 voxel wide, where InstanceNorm is undefined).
"""
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vfnet.model.genant_prior import GenantPrior

from vfnet.errors import PlanError

ARCHITECTURE = "ResidualEncoderClassifier"
REQUIRED_KEYS = ("in_channels", "num_classes", "stem_channels", "stem_stride", "stage_channels",
                 "blocks_per_stage", "stage_strides", "projection_dim")
CHANNELS_PER_GROUP = 8
MORPHOMETRY_WIDTH = 32  # hidden units of the morphometric branch: a handful of ratios need no more
# Channels-last 3D layout: oneDNN's convolutions ran a training step ~25 % and inference ~20 % faster on the
# project's 2-core CPU (32x64x40 crops, batch 32; benchmarks/ and documentation/benchmarks.md).
MEMORY_FORMAT = torch.channels_last_3d


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(max(1, channels // CHANNELS_PER_GROUP), channels)


class ResidualBlock(nn.Module):
    """Two 3x3x3 convolutions with a shortcut (1x1x1 projection where shape changes)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv3d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.norm1 = _norm(out_channels)
        self.conv2 = nn.Conv3d(out_channels, out_channels, 3, padding=1, bias=False)
        self.norm2 = _norm(out_channels)
        self.activation = nn.LeakyReLU(0.01, inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(nn.Conv3d(in_channels, out_channels, 1, stride=stride, bias=False),
                                          _norm(out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.activation(self.norm1(self.conv1(x)))
        out = self.norm2(self.conv2(out))
        return self.activation(out + self.shortcut(x))


class VertebraClassifier(nn.Module):
    def __init__(self, in_channels: int, num_classes: int, stem_channels: int, stem_stride: int,
                 stage_channels: list[int], blocks_per_stage: list[int], stage_strides: list[int],
                 projection_dim: int, dropout: float = 0.0, morphometric_features: int = 0,
                 genant_prior: dict[str, Any] | None = None, image_head: bool = False):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv3d(in_channels, stem_channels, 3, stride=stem_stride, padding=1, bias=False),
            _norm(stem_channels), nn.LeakyReLU(0.01, inplace=True))
        blocks: list[nn.Module] = []
        channels = stem_channels
        for width, count, stride in zip(stage_channels, blocks_per_stage, stage_strides):
            for index in range(count):
                blocks.append(ResidualBlock(channels, width, stride if index == 0 else 1))
                channels = width
        self.encoder = nn.Sequential(*blocks)
        self.feature_dim = channels
        self.dropout = nn.Dropout(dropout)
        # Morphometric branch: the measured Genant ratios (values + availability flags) join the pooled CNN
        # features before the classifier; the contrastive embedding stays the CNN's own.
        self.morphometric_features = int(morphometric_features)
        branch_width = MORPHOMETRY_WIDTH if self.morphometric_features else 0
        self.morphometry = nn.Sequential(nn.Linear(2 * self.morphometric_features, branch_width),
                                         nn.LeakyReLU(0.01)) if branch_width else None
        self.classifier = nn.Linear(channels + branch_width, num_classes)
        # Training only: a grade from the image alone, so the encoder has to learn from the CT itself.
        self.image_classifier = nn.Linear(channels, num_classes) if image_head else None
        self.genant_prior = GenantPrior(num_features=self.morphometric_features, **genant_prior) \
            if genant_prior and self.morphometric_features else None
        self.projection = nn.Sequential(nn.Linear(channels, channels), nn.ReLU(inplace=True),
                                        nn.Linear(channels, projection_dim))

    def forward(self, x: torch.Tensor, morphometry: torch.Tensor | None = None,
                detach_classifier: bool = False) -> dict[str, torch.Tensor]:
        """`morphometry`: (B, 2F) feature values then availability flags (vfnet.morphometry.genant); None
        means unavailable for every sample (e.g. centroid input)."""
        features = self.encoder(self.stem(x.contiguous(memory_format=MEMORY_FORMAT))).mean(dim=(2, 3, 4))
        # The paper's recipe trains the classifier on detached features: only SupCon shapes the encoder.
        classifier_input = features.detach() if detach_classifier else features
        if self.morphometry is not None:
            if morphometry is None:
                morphometry = features.new_zeros(features.shape[0], 2 * self.morphometric_features)
            classifier_input = torch.cat([classifier_input, self.morphometry(morphometry.to(features.dtype))], dim=1)
        logits = self.classifier(self.dropout(classifier_input))
        if self.genant_prior is not None:
            logits = logits + self.genant_prior(morphometry.to(logits.dtype))
        embedding = F.normalize(self.projection(features), dim=1)
        result = {"logits": logits, "features": features, "embedding": embedding}
        if self.image_classifier is not None:
            result["image_logits"] = self.image_classifier(self.dropout(features))
        return result


def _check_network_plan(plan: dict[str, Any]) -> None:
    missing = [key for key in REQUIRED_KEYS if key not in plan]
    if missing:
        raise PlanError(f"The plan's network section lacks {', '.join(missing)}.")
    architecture = plan.get("architecture", ARCHITECTURE)
    if architecture != ARCHITECTURE:
        raise PlanError(f"The plan asks for network architecture '{architecture}'; vfnet builds only {ARCHITECTURE}.")
    lengths = {len(plan[key]) for key in ("stage_channels", "blocks_per_stage", "stage_strides")}
    if len(lengths) != 1:
        raise PlanError("The plan's network section needs stage_channels, blocks_per_stage and stage_strides "
                        "of the same length.")


def build_network(network_plan: dict[str, Any]) -> VertebraClassifier:
    """Build the classifier exactly as the plan's `network` section describes."""
    _check_network_plan(network_plan)
    try:
        return VertebraClassifier(
            in_channels=int(network_plan["in_channels"]), num_classes=int(network_plan["num_classes"]),
            stem_channels=int(network_plan["stem_channels"]), stem_stride=int(network_plan["stem_stride"]),
            stage_channels=[int(v) for v in network_plan["stage_channels"]],
            blocks_per_stage=[int(v) for v in network_plan["blocks_per_stage"]],
            stage_strides=[int(v) for v in network_plan["stage_strides"]],
            projection_dim=int(network_plan["projection_dim"]),
            dropout=float(network_plan.get("dropout", 0.0)),
            morphometric_features=len(network_plan.get("morphometric_features", [])),
            genant_prior=network_plan.get("genant_prior"),
            image_head=bool(network_plan.get("image_head", False))).to(memory_format=MEMORY_FORMAT)
    except (TypeError, ValueError) as error:
        raise PlanError(f"The plan's network section holds an invalid value: {error}.") from None
