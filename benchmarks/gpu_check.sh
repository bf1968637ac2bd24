#!/usr/bin/env bash
# The GPU check of issue 12 in one command, <= 5 minutes on one H100/H200 (benchmarks/README.md, "GPU check").
# Needs: this checkout, python with torch (CUDA), numpy, scipy, scikit-learn, matplotlib; NOT SimpleITK or the
# raw data: it trains from an archive of preprocessed crops made on another machine (see README for how).
# Usage: bash benchmarks/gpu_check.sh [ARCHIVE]   (default ARCHIVE: gpu_check_data.tar.xz in the repository root)
# Env:   OUT (results folder; default benchmarks/results/gpu_check), PLANS (default vfnetPlans_gpu),
#        GPU_CHECK_SECONDS (time for the python part; default 270, leaving ~30 s for unpacking and start-up),
#        PYTHON (default python3), DEVICE (default cuda; cpu = a dry run of the script on a tiny archive).
set -euo pipefail
cd "$(dirname "$0")/.."
ARCHIVE=${1:-gpu_check_data.tar.xz}
OUT=${OUT:-benchmarks/results/gpu_check}
PLANS=${PLANS:-vfnetPlans_gpu}
PYTHON=${PYTHON:-python3}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
[ -f "$ARCHIVE" ] || { echo "gpu_check: no archive $ARCHIVE; make it as benchmarks/README.md says (GPU check)." >&2; exit 1; }

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
export vfnet_raw=$WORK/raw vfnet_preprocessed=$WORK/preprocessed vfnet_results=$WORK/results
mkdir -p "$vfnet_raw" "$vfnet_preprocessed" "$vfnet_results"
tar -xf "$ARCHIVE" -C "$vfnet_preprocessed"
DATASET=$(cd "$vfnet_preprocessed" && ls -d Dataset*_* | head -n 1)
[ -f "$vfnet_preprocessed/$DATASET/$PLANS.json" ] || { echo "gpu_check: $ARCHIVE holds no $DATASET/$PLANS.json." >&2; exit 1; }

export PYTHONPATH=$PWD:$WORK/shims${PYTHONPATH:+:$PYTHONPATH}
# tqdm (the trainer's progress bar) may be missing on the GPU machine: a silent stand-in keeps the loop unchanged.
if ! "$PYTHON" -c "import tqdm" 2>/dev/null; then
  mkdir -p "$WORK/shims"
  cat > "$WORK/shims/tqdm.py" <<'PY'
class tqdm:
    def __init__(self, iterable=None, **kwargs):
        self.iterable, self.n = iterable, 0
    def __iter__(self):
        for item in self.iterable:
            yield item
            self.n += 1
    def set_postfix(self, *args, **kwargs):
        pass
    def close(self):
        pass
PY
fi
nvidia-smi > "$OUT/nvidia_smi.txt" 2>&1 || true
"$PYTHON" -c "import SimpleITK" 2>/dev/null && echo "gpu_check: note: SimpleITK is installed here (not needed)."
echo "gpu_check: dataset $DATASET, plans $PLANS, results in $OUT"
"$PYTHON" benchmarks/gpu_check.py --dataset "$DATASET" --plans "$PLANS" --out "$OUT" --device "${DEVICE:-cuda}" \
  --seconds "${GPU_CHECK_SECONDS:-270}" ${STEPS:+--steps "$STEPS"} 2>&1 | tee "$OUT/gpu_check.log"
exit "${PIPESTATUS[0]}"
