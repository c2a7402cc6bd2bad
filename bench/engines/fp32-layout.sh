#!/usr/bin/env bash
# Device run: GPU tests, then ResNet-50 and MobileNetV2 in strict FP32 built channels-first (the default) and
# channels-last (KILN_CUDA_FP32_NHWC=1: cuDNN NHWC descriptors, 1x1 convolutions as products over every
# pixel), each compared with the reference and timed at batch 64 and 1, beside PyTorch eager FP32 in the same
# call; and the ResNet-50 FP16 build time.
set -u
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
python3 $D/baselines.py --export $M --models resnet50,mobilenet_v2 --batches 1 64 --no-compile --no-ceilings \
    --json $OUT/baselines.json > $OUT/baselines.log 2>&1 || tail -3 $OUT/baselines.log
grep -E "eager_fp32|eager_fp16" $OUT/baselines.log | head -8
for m in resnet50 mobilenet_v2; do
  for layout in nchw nhwc; do
    env=""; [[ $layout == nhwc ]] && env="KILN_CUDA_FP32_NHWC=1"
    for b in 64 1; do
      /usr/bin/time -f "build %e s" env $env $K build $M/$m.onnx -o /tmp/$m-$layout-$b.kiln --device cuda --batch $b \
          > $OUT/build-$m-$layout-$b.log 2>&1
      echo "== $m fp32 $layout b$b: $(grep -c 'note: no' $OUT/build-$m-$layout-$b.log) unmatched; $(tail -1 $OUT/build-$m-$layout-$b.log)"
      [[ $b == 1 ]] && $K compare /tmp/$m-$layout-$b.kiln --reference $M/$m.io_b1.npz --tolerance 1e-4 2>&1 | tail -1
      $K bench /tmp/$m-$layout-$b.kiln --batch $b --cuda-graph --duration 2 2>&1 | grep -E "^    compute"
      if [[ $b == 64 ]]; then
        $K inspect /tmp/$m-$layout-$b.kiln --verbose > $OUT/tactics-$m-$layout.log 2>&1
        [[ $m == resnet50 ]] && $K bench /tmp/$m-$layout-$b.kiln --batch $b --duration 1 --profile > $OUT/profile-$m-$layout.log 2>&1
      fi
    done
  done
done
/usr/bin/time -f "build %e s" $K build $M/resnet50.onnx -o /tmp/r16.kiln --device cuda --batch 64 --fp16 > $OUT/build-r16.log 2>&1
echo "== resnet50 fp16 b64: $(tail -1 $OUT/build-r16.log)"
$K bench /tmp/r16.kiln --batch 64 --cuda-graph --duration 2 2>&1 | grep -E "^    compute"
cd $OUT && tar -czf logs.tgz *.log && rm -f *.log
