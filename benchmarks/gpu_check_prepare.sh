#!/usr/bin/env bash
# Make the archive benchmarks/gpu_check.sh trains from, on a machine WITH SimpleITK and the phantom (this one):
# convert the phantom, plan it for the gpu budget (plans name vfnetPlans_gpu) and preprocess, then pack the
# preprocessed folder (crops, plan, splits; ~40 MB as .tar.xz) into gpu_check_data.tar.xz in the repository root
# (git-ignored; carry it to the GPU machine). A few minutes on 2 cores.
# Usage: bash benchmarks/gpu_check_prepare.sh [PHANTOM]   (default ../shared/data/phantom_verse)
set -euo pipefail
cd "$(dirname "$0")/.."
PHANTOM=${1:-../shared/data/phantom_verse}
ID=504
NAME=Dataset${ID}_Phantom
GRADES=$(ls "$PHANTOM"/fracture_grading.csv "$PHANTOM"/fracture_grading.xlsx 2>/dev/null | head -n 1)
[ -n "$GRADES" ] || { echo "gpu_check_prepare: no fracture_grading.csv/.xlsx in $PHANTOM." >&2; exit 1; }
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
export vfnet_raw=$WORK/raw vfnet_preprocessed=$WORK/preprocessed vfnet_results=$WORK/results
mkdir -p "$vfnet_raw" "$vfnet_preprocessed" "$vfnet_results"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
python3 dataset_conversion/convert_verse.py -i "$PHANTOM" -g "$GRADES" -d $ID -n Phantom --overwrite
python3 -m vfnet.cli.plan_and_preprocess -d $ID --budget gpu -pl vfnetPlans_gpu -np 2
tar -C "$vfnet_preprocessed" -cJf gpu_check_data.tar.xz "$NAME/dataset.json" "$NAME/splits_final.json" \
  "$NAME/dataset_fingerprint.json" "$NAME/vfnetPlans_gpu.json" "$NAME/vfnetPlans_gpu_3d"
ls -l gpu_check_data.tar.xz
