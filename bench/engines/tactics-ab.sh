#!/usr/bin/env bash
# Device run: GPU tests; cuDNN algorithm timing on ResNet-50 and MobileNetV2: level 0 (heuristics only) against
# level 3 (timed), correctness, and PyTorch eager in the same call.
set -u
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
echo "== baselines (export + PyTorch eager)"
python3 $D/baselines.py --export $M --models resnet50,mobilenet_v2 --batches 1 64 --no-compile --no-ceilings --quick --json $OUT/base.json > $OUT/base.log 2>&1 || tail -5 $OUT/base.log
grep -E "eager|ort" $OUT/base.log | head -20
for m in resnet50 mobilenet_v2; do
  echo "== $m"
  s=$(date +%s.%N); $K build $M/$m.onnx --device cuda --batch 64 --timing-cache /tmp/tc-$m.json -o /tmp/$m.kiln 2>&1 | grep -v "^device"; e=$(date +%s.%N)
  echo "   cold build wall $(python3 -c "print(round($e-$s,2))") s; $($K inspect /tmp/$m.kiln | grep level)"
  $K compare $M/$m.onnx --device cuda --reference $M/$m.io_b1.npz 2>&1 | tail -1
  for b in 1 64; do for l in 0 3; do
    echo "-- $m b$b level $l"; $K bench $M/$m.onnx --device cuda --batch $b --level $l --duration 2 --json $OUT/k-$m-$b-$l.json 2>&1 | grep -E "compute"; done; done; for b in 1 64; do for l in 0 3; do echo "-- again $m b$b level $l"; $K bench $M/$m.onnx --device cuda --batch $b --level $l --duration 2 2>&1 | grep -E "compute"
  done; done
done
