"""The plan's `network` section (residual encoder with a strided stem) and its analytic cost.

Rule: a stride-2 stem, then stages whose first block halves the size (the first stage keeps it) until the
smallest axis of the bottleneck is about 4 voxels; widths double per stage from the stem width up to a cap.
FLOPs are summed over every convolution of `vfnet.model.network` (2 FLOPs per multiply-add), which is what
dominates a 3D CNN's cost; normalisation, activations and the heads are negligible next to them.
"""
import math
from typing import Any, Sequence

STEM_STRIDE = 2
BOTTLENECK_VOXELS = 4
MAX_DOWNSAMPLINGS = 5          # stem + 4 stages: a 128-voxel crop reaches 4 voxels
KERNEL_VOXELS = 27             # 3x3x3 convolutions


def num_downsamplings(crop_size: Sequence[int]) -> int:
    """Stride-2 steps (stem included) that bring the smallest crop axis closest to 4 voxels (at least 2 steps)."""
    smallest = min(crop_size)
    steps = int(round(math.log2(max(smallest, 1) / BOTTLENECK_VOXELS)))
    return max(2, min(MAX_DOWNSAMPLINGS, steps))


def network_plan(downsamplings: int, in_channels: int, stem_channels: int, max_channels: int,
                 projection_dim: int, dropout: float) -> dict[str, Any]:
    """`downsamplings` stride-2 steps in all: the stem's, then one per stage after the first."""
    num_stages = downsamplings  # the first stage keeps the stem's resolution, each later one halves it
    stage_channels = [min(max_channels, stem_channels * 2 ** index) for index in range(num_stages)]
    # Deeper stages are cheap (few voxels) and carry the semantics: two blocks there, one early on.
    blocks = [1 if index < max(1, num_stages // 2) else 2 for index in range(num_stages)]
    return {"architecture": "ResidualEncoderClassifier", "in_channels": int(in_channels), "num_classes": 4,
            "stem_channels": int(stem_channels), "stem_stride": STEM_STRIDE,
            "stage_channels": stage_channels, "blocks_per_stage": blocks,
            "stage_strides": [1] + [2] * (num_stages - 1),
            "projection_dim": int(projection_dim), "dropout": float(dropout)}


def total_stride(network: dict[str, Any]) -> int:
    return int(network["stem_stride"]) * math.prod(int(s) for s in network["stage_strides"])


def _conv_flops(in_channels: int, out_channels: int, output_shape: Sequence[int], kernel_voxels: int) -> float:
    return 2.0 * in_channels * out_channels * kernel_voxels * math.prod(output_shape)


def forward_flops(network: dict[str, Any], crop_size: Sequence[int]) -> float:
    """FLOPs of one forward pass for one sample of shape `crop_size` (z, y, x)."""
    shape = [math.ceil(n / network["stem_stride"]) for n in crop_size]
    flops = _conv_flops(network["in_channels"], network["stem_channels"], shape, KERNEL_VOXELS)
    channels = network["stem_channels"]
    for width, count, stride in zip(network["stage_channels"], network["blocks_per_stage"], network["stage_strides"]):
        for index in range(count):
            block_stride = stride if index == 0 else 1
            shape = [math.ceil(n / block_stride) for n in shape]
            flops += _conv_flops(channels, width, shape, KERNEL_VOXELS) + _conv_flops(width, width, shape, KERNEL_VOXELS)
            if block_stride != 1 or channels != width:
                flops += _conv_flops(channels, width, shape, 1)
            channels = width
    return flops
