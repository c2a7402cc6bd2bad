#!/usr/bin/env bash
# Device run: a plan built with a batch profile (1:8:32) serving shapes between MIN, OPT and MAX. For each model
# and precision (FP32 at the default level; FP16 at level 0): the plan runs batches 2, 5, 16 and 31 with NVRTC
# turned off (KILN_NVRTC=off: a machine without it); its outputs at batches 5 and 31 against the CPU backend;
# the first run at batch 16 with NVRTC (what compiling that shape costs); and, in FP32, its batch-16 throughput
# against an engine built and timed for batch 16 in memory. MODELS and PRECISIONS (fp32 fp16) narrow it.
# Logs under $OUT/shapes/.
set -u
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
L=$OUT/shapes; mkdir -p $L
models=${MODELS:-resnet50 mobilenet_v2 bert-base vit_b_16}
python3 $D/baselines.py --export $M --models ${models// /,} --batches 1 --no-compile --quick --no-ceilings \
    > $L/export.log 2>&1 || tail -5 $L/export.log
profile() {
  case $1 in
    bert-base) echo "input_ids=1x128:8x128:32x128,attention_mask=1x128:8x128:32x128" ;;
    *) echo "input=1x3x224x224:8x3x224x224:32x3x224x224" ;;
  esac
}
shape() {
  case $1 in
    bert-base) echo "--shape input_ids=$2x128 --shape attention_mask=$2x128" ;;
    *) echo "--shape input=$2x3x224x224" ;;
  esac
}
median() { grep -E "^ *compute" | awk '{print $4}'; }
for m in $models; do
  for p in ${PRECISIONS:-fp32 fp16}; do
    opts=""; tol=1e-4
    [[ $p == fp16 ]] && { opts="--fp16 --level 0"; tol=2e-2; }
    plan=/tmp/$m-$p.kiln
    s=$(date +%s.%N)
    $K build $M/$m.onnx --device cuda $opts --profile $(profile $m) -o $plan > $L/build-$m-$p.log 2>&1 \
        || { echo "$m $p: build failed"; tail -3 $L/build-$m-$p.log; continue; }
    e=$(date +%s.%N)
    echo "== $m $p: built in $(python3 -c "print(round($e-$s,1))") s, $(stat -c %s $plan) bytes"
    for b in 2 5 16 31; do
      log=$L/off-$m-$p-b$b.log
      KILN_NVRTC=off $K bench $plan $(shape $m $b) --duration 0.2 --warmup 5 > $log 2>&1
      echo "   b$b without NVRTC: $(grep -q compute $log && echo "ran, median $(median < $log) ms" || grep -m1 Error $log | cut -c1-300)"
    done
    for b in 5 31; do
      echo "   b$b against the CPU: $(KILN_NVRTC=off $K compare $plan $(shape $m $b) --tolerance $tol 2>&1 | tail -1 | cut -c1-200)"
    done
    $K bench $plan $(shape $m 16) --duration 1 --warmup 20 > $L/on-$m-$p-b16.log 2>&1
    echo "   b16 with NVRTC: $(grep -m1 'first run' $L/on-$m-$p-b16.log | sed 's/.*first run/first run/'), median $(median < $L/on-$m-$p-b16.log) ms"
    if [[ $p == fp32 ]]; then
      $K bench $M/$m.onnx --device cuda $(shape $m 16) --duration 1 --warmup 20 > $L/mem-$m-b16.log 2>&1
      echo "   b16 built and timed for it in memory: $(grep -m1 'first run' $L/mem-$m-b16.log | sed 's/.*first run/first run/'), median $(median < $L/mem-$m-b16.log) ms"
    fi
  done
done
tar czf $OUT/shapes.tgz -C $L . && rm -rf $L
