#!/usr/bin/env bash
# Device run: which kernels a plan built with a shape profile lacks for shapes inside the profile other than
# MIN/OPT/MAX. Each model is built with the batch profile 1:8:32 (FP32 at the default level; FP16 at level 0),
# then the plan runs batches 2, 5, 16 and 31 with NVRTC turned off (KILN_NVRTC=off: a machine without it) and
# again with NVRTC. Logs under $OUT/shapes/.
set -u
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
L=$OUT/shapes; mkdir -p $L
python3 $D/baselines.py --export $M --models ${MODELS:-resnet50,mobilenet_v2,bert-base,vit_b_16} --batches 1 \
    --no-compile --quick --no-ceilings > $L/export.log 2>&1 || tail -5 $L/export.log
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
for m in ${MODELS:-resnet50 mobilenet_v2 bert-base vit_b_16}; do
  m=${m//,/ }
  for p in fp32 fp16; do
    opts=""; [[ $p == fp16 ]] && opts="--fp16 --level 0"
    plan=/tmp/$m-$p.kiln
    s=$(date +%s.%N)
    $K build $M/$m.onnx --device cuda $opts --profile $(profile $m) -o $plan > $L/build-$m-$p.log 2>&1 || { echo "$m $p: build failed"; tail -3 $L/build-$m-$p.log; continue; }
    e=$(date +%s.%N)
    echo "== $m $p: built in $(python3 -c "print(round($e-$s,1))") s, $(stat -c %s $plan) bytes"
    for b in 2 5 16 31; do
      KILN_NVRTC=off $K bench $plan $(shape $m $b) --duration 0.2 --warmup 5 > $L/off-$m-$p-b$b.log 2>&1
      if grep -q "compute" $L/off-$m-$p-b$b.log; then echo "   b$b without NVRTC: ran"
      else echo "   b$b without NVRTC: $(grep -o '[0-9]* kernels ([^)]*)\|kernel '"'"'[^'"'"']*'"'"'' $L/off-$m-$p-b$b.log | head -1 | cut -c1-400)"; grep -i error $L/off-$m-$p-b$b.log | head -2 | cut -c1-300; fi
    done
    $K bench $plan $(shape $m 16) --duration 0.3 --warmup 5 > $L/on-$m-$p-b16.log 2>&1
    echo "   b16 with NVRTC: $(grep -E 'first run|compute' $L/on-$m-$p-b16.log | tr -s ' ' | tr '\n' ';')"
  done
done
