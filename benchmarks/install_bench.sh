#!/usr/bin/env bash
# Benchmark-only dependencies (MONAI, nnU-Net v2) on a fresh machine, without letting pip replace the pinned
# CPU torch: nnunetv2's chain (timm -> torchvision) would otherwise pull a multi-GB CUDA build.
# Usage: bash benchmarks/install_bench.sh   (from the repository root, in the environment vfnet is installed in)
set -euo pipefail
pip install torch==2.13.0
pip install -e ".[bench]"
pip install --no-deps nnunetv2==2.8.1 dynamic-network-architectures==0.4.4 batchgeneratorsv2==0.3.6
python -c "import torch, monai, nnunetv2; print('torch', torch.__version__, '| monai', monai.__version__, '| nnunetv2 ok')"
