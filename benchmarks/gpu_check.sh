#!/usr/bin/env bash
# The GPU acceptance run (issue 22): the GPU test lane, one epoch of each model family on the
# GPU against the CPU, transfers and launches per step, throughput against PyTorch CUDA, and
# hybridize's fuse_elementwise / cuda_graph flags against neither (replay_flags.py).
# Writes $OUT/gpu_check.json (the report) and $OUT/gpu_check.log. Run from the repository root:
#
#   bash benchmarks/gpu_check.sh                       # on a machine with a CUDA GPU and CuPy
#   DLRUN_EMULATE_GPU=1 bash benchmarks/gpu_check.sh   # anywhere: the emulated GPU
#
# A machine without Hydra/OmegaConf (no network): carry their wheels in .whl/ (see
# benchmarks/README.md, "gpu_check.sh"); they are installed to /tmp/site first.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-outputs/gpu_check}
mkdir -p "$OUT"
if [ -d .whl ] && ! python3 -c 'import hydra' 2>/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
python3 benchmarks/gpu_check.py --out "$OUT" "$@" 2>&1 | tee "$OUT/gpu_check.log"
