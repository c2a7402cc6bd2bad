#!/usr/bin/env bash
# Device run: the CUDA tests, then the four bench models (baselines.py --export) built at batch 64, FP32 and
# FP16 (level 0: the layout is what is compared, not tactics), with and without `--no-fuse pointwise-in-place`:
# the planned activation memory of each (`--memory-report`), the batch-64 compute median of each, and the
# outputs of the in-place FP32 engine at batch 1 against the strict-FP32 reference.
set -u
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
models=${MODELS:-resnet50 mobilenet_v2 bert-base vit_b_16}
python3 $D/baselines.py --export $M --models ${models// /,} --batches 1 --no-compile --quick --no-ceilings \
    > $OUT/export.log 2>&1 || tail -5 $OUT/export.log
for m in $models; do
  for p in fp32 fp16; do
    opts="--level 0"; [[ $p == fp16 ]] && opts="$opts --fp16"
    for mode in on off; do
      extra=""; [[ $mode == off ]] && extra="--no-fuse pointwise-in-place"
      $K build $M/$m.onnx --device cuda --batch 64 $opts $extra --memory-report -o /tmp/$m-$p-$mode.kiln > /tmp/b.log 2>&1 \
        || { echo "$m $p $mode: build failed"; tail -3 /tmp/b.log; continue; }
      act=$(grep -m1 "activations" /tmp/b.log | sed 's/^ *//')
      med=$($K bench /tmp/$m-$p-$mode.kiln --batch 64 --duration 1 --warmup 20 2>&1 | grep -E "^ *compute" | awk '{print $4}')
      echo "$m $p in-place $mode: $act; b64 compute median $med ms"
    done
  done
  echo "   $m fp32 b1 against the reference: $($K compare $M/$m.onnx --device cuda --reference $M/$m.io_b1.npz 2>&1 | tail -1 | grep -o 'worst.*')"
done
