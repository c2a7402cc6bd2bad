#!/usr/bin/env bash
# Device run: GPU tests; ResNet-50 with a shape profile; refit; build budget; the ONNX suite
# on CUDA with every engine saved as a plan and loaded back.
set -u
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
python3 $D/baselines.py --export $M --models resnet50 --batches 1 --no-compile --quick --no-ceilings > $OUT/export.log 2>&1 || tail -5 $OUT/export.log
echo "== ResNet-50 with the profile input=1:8:32 (x3x224x224)"
s=$(date +%s.%N); $K build $M/resnet50.onnx --device cuda --profile input=1x3x224x224:8x3x224x224:32x3x224x224 --memory-report -o /tmp/rp.kiln 2>&1 | grep -v "^device"; e=$(date +%s.%N)
echo "   wall $(python3 -c "print(round($e-$s,2))") s"
$K inspect /tmp/rp.kiln | sed -n 1,14p
for b in 8 16 32 64; do
  echo "-- bench the plan at batch $b"; $K bench /tmp/rp.kiln --batch $b --duration 1 --warmup 100 2>&1 | grep -E "first run|compute|Error"
done
echo "== refit with the same weights"
$K refit /tmp/rp.kiln --from $M/resnet50.onnx -o /tmp/rp2.kiln && cmp /tmp/rp.kiln /tmp/rp2.kiln && echo "   same bytes"
$K compare /tmp/rp2.kiln --reference $M/resnet50.io_b1.npz 2>&1 | tail -1
echo "== build budget 0 s against the default"
$K build $M/resnet50.onnx --device cuda --batch 64 --build-budget 0 -o /tmp/rb0.kiln 2>&1 | grep -v "^device"
$K inspect /tmp/rb0.kiln | grep level
$K build $M/resnet50.onnx --device cuda --batch 64 -o /tmp/rb.kiln 2>&1 | grep -v "^device"
$K inspect /tmp/rb.kiln | grep level
mkdir -p /tmp/s && tar xzf $D/suite.tgz -C /tmp/s
echo "== kiln verify --device cuda --through-plan (all cases)"
timeout 330 $K verify /tmp/s --device cuda --jobs 8 --through-plan --results $OUT/plan.tsv 2>&1 | tail -2
