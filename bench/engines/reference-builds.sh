#!/usr/bin/env bash
# Device run: GPU tests (with the tactic reference check); ResNet-50 and BERT-base in FP32 and FP16 built at
# batch 64 (tactics timed, each candidate checked against the host reference), compared with their references,
# timed.
set -u
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
python3 $D/baselines.py --export $M --models resnet50,bert-base --batches 1 --no-compile --quick --no-ceilings > $OUT/export.log 2>&1 || tail -3 $OUT/export.log
for spec in "resnet50 32" "resnet50 16" "bert-base 32" "bert-base 16"; do
  set -- $spec; m=$1; p=$2; flag=""; [[ $p == 16 ]] && flag="--fp16"; tol=1e-4; [[ $p == 16 ]] && tol=5e-2
  /usr/bin/time -f "build %e s" $K build $M/$m.onnx -o /tmp/$m-$p.kiln --device cuda --batch 64 $flag > $OUT/build-$m-$p.log 2>&1
  echo "== $m fp$p: $(grep -c 'note: no cuBLASLt' $OUT/build-$m-$p.log) products and $(grep -c 'note: no cuDNN' $OUT/build-$m-$p.log) convolutions without a matching algorithm; $(tail -1 $OUT/build-$m-$p.log)"
  $K compare /tmp/$m-$p.kiln --reference $M/$m.io_b1.npz --tolerance $tol 2>&1 | tail -1
  $K bench /tmp/$m-$p.kiln --batch 64 --cuda-graph --duration 2 2>&1 | grep -E "^    compute"
done
cd $OUT && tar -czf logs.tgz *.log && rm -f *.log
