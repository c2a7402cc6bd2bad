#!/usr/bin/env bash
# Device run: where ViT-B/16's float16 error comes from. The exported model (baselines.py, batch 1) is compared
# with its strict-FP32 reference as a float16 engine with every pass, then with one fusion left out at a time
# (the unfused layers run in float16 too), beside PyTorch eager FP16's own error from the export log.
# Use: bash bench/precision/vit-error-sources.sh [MODEL]   (default vit_b_16)
set -u
KILN_GPU_TESTS=0
source "$(dirname "${BASH_SOURCE[0]}")/../engines/common.sh"
m=${1:-vit_b_16}
python3 $D/baselines.py --export $M --models $m --batches 1 --no-compile --quick --no-ceilings \
    --json $OUT/export.json > $OUT/export.log 2>&1 || tail -3 $OUT/export.log
python3 - $OUT/export.json <<'PY'
import json, sys
def walk(x):
    if isinstance(x, dict):
        if str(x.get("mode", "")).startswith("eager") and "rel_err_vs_fp32_strict" in x:
            print(f'{x["mode"]:28s} rel. error {x["rel_err_vs_fp32_strict"]:.3e}')
        for v in x.values(): walk(v)
    elif isinstance(x, list):
        for v in x: walk(v)
walk(json.load(open(sys.argv[1])))
PY
for leave in none attention-fusion pointwise-fusion epilogue-fusion gelu-recognition normalization-recognition \
    horizontal-fusion gelu-recognition+attention-fusion; do
  flags=""; [[ $leave != none ]] && flags="--no-fuse ${leave//+/ --no-fuse }"
  printf "%-28s " "$leave"
  $K compare $M/$m.onnx --device cuda --fp16 $flags --reference $M/$m.io_b1.npz --tolerance 5e-2 2>&1 | tail -1
done
