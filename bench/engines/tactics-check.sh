#!/usr/bin/env bash
# Device check after the tactic-timer refactor: GPU tests; ResNet-50 and MobileNetV2 correctness and level 0/3.
set -u
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
python3 $D/baselines.py --export $M --models resnet50,mobilenet_v2 --batches 1 --no-compile --quick --no-ceilings > $OUT/base.log 2>&1 || tail -5 $OUT/base.log
for m in resnet50 mobilenet_v2; do
  echo "== $m"
  $K compare $M/$m.onnx --device cuda --reference $M/$m.io_b1.npz 2>&1 | tail -1
  for b in 1 64; do for l in 0 3 3; do
    echo "-- $m b$b level $l"; $K bench $M/$m.onnx --device cuda --batch $b --level $l --duration 2 2>&1 | grep -E "compute"
  done; done
done
