#!/usr/bin/env bash
# Device run: GPU tests, then ResNet-50 and MobileNetV2 in strict FP32 with the carried binary (.device/kiln.xz)
# and an earlier one (.device/kiln-before.xz, e.g. all channels-first float32), each built at batch 64 and 1,
# compared with the reference at batch 1 and timed, beside PyTorch eager FP32 in the same call; ResNet-50 FP16
# at batch 64 with both binaries (not with FP16=0); per-layer profiles of ResNet-50 FP32 at batch 64 in logs.tgz.
# FLAGS adds build options to every float32 build (e.g. FLAGS=--tf32, compared at TOL, default 1e-4).
set -u
FLAGS=${FLAGS:-}
TOL=${TOL:-1e-4}
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
xz -dc $D/kiln-before.xz > $D/kiln-before && chmod +x $D/kiln-before
python3 $D/baselines.py --export $M --models resnet50,mobilenet_v2 --batches 1 64 --no-compile --no-ceilings \
    --json $OUT/baselines.json > $OUT/baselines.log 2>&1 || tail -3 $OUT/baselines.log
grep -E "eager_fp32|eager_fp16" $OUT/baselines.log | head -8
for m in resnet50 mobilenet_v2; do
  for which in before after; do
    bin=$K; [[ $which == before ]] && bin=$D/kiln-before
    for b in 64 1; do
      plan=/tmp/$m-$which-$b.kiln
      /usr/bin/time -f "build %e s" $bin build $M/$m.onnx -o $plan --device cuda --batch $b $FLAGS > $OUT/build-$m-$which-$b.log 2>&1
      echo "== $m fp32 $FLAGS $which b$b: $(tail -1 $OUT/build-$m-$which-$b.log)"
      [[ $b == 1 ]] && $bin compare $plan --reference $M/$m.io_b1.npz --tolerance $TOL 2>&1 | tail -1
      $bin bench $plan --batch $b --cuda-graph --duration 2 2>&1 | grep -E "^engine|^    compute"
    done
  done
done
$K bench /tmp/resnet50-after-64.kiln --batch 64 --duration 1 --profile > $OUT/profile-resnet50-after.log 2>&1
$K inspect /tmp/resnet50-after-64.kiln > $OUT/inspect-resnet50-after.log 2>&1
for which in before after; do
  [[ ${FP16:-1} == 0 ]] && break
  bin=$K; [[ $which == before ]] && bin=$D/kiln-before
  /usr/bin/time -f "build %e s" $bin build $M/resnet50.onnx -o /tmp/r16-$which.kiln --device cuda --batch 64 --fp16 > $OUT/build-r16-$which.log 2>&1
  echo "== resnet50 fp16 $which b64: $(tail -1 $OUT/build-r16-$which.log)"
  $bin bench /tmp/r16-$which.kiln --batch 64 --cuda-graph --duration 2 2>&1 | grep -E "^    compute"
done
cd $OUT && tar -czf logs.tgz *.log && rm -f *.log
