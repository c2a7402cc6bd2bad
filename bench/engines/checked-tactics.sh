#!/usr/bin/env bash
# Device check of checked tactic timing: CUDA tests; ResNet-50 and BERT-base build time (cold), outputs
# against the references, and level 0 against level 3 at batch 1 and 64.
set -u
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
python3 $D/baselines.py --export $M --models resnet50,bert-base --batches 1 --no-compile --quick --no-ceilings \
    > $OUT/base.log 2>&1 || tail -5 $OUT/base.log
for m in resnet50 bert-base; do
  echo "== $m"
  s=$(date +%s.%N); $K build $M/$m.onnx --device cuda --batch 64 -o /tmp/$m.kiln 2>&1 | grep -v "^device"; e=$(date +%s.%N)
  echo "   cold build wall $(python3 -c "print(round($e-$s,2))") s; $($K inspect /tmp/$m.kiln | grep level)"
  $K compare $M/$m.onnx --device cuda --reference $M/$m.io_b1.npz 2>&1 | tail -1
  for b in 1 64; do for l in 0 3; do
    echo "-- $m b$b level $l"; $K bench $M/$m.onnx --device cuda --batch $b --level $l --duration 2 2>&1 | grep -E "compute"
  done; done
done
