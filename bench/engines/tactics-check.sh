#!/usr/bin/env bash
# Device check after the tactic-timer refactor: GPU tests; ResNet-50 and MobileNetV2 correctness and level 0/3.
set -u
D=.device
K=$D/kiln
xz -dc $D/kiln.xz > $K && chmod +x $K
mkdir -p $D/gt && tar -xJf $D/gputests.tar.xz -C $D/gt
echo "== GPU tests"
LD_LIBRARY_PATH=$D/gt/lib timeout 240 $D/gt/KilnPackageTests.xctest --testing-library swift-testing --filter "KilnCUDATests" > $OUT/gputests.log 2>&1; echo "rc=$?"
grep -E "✘|Test run with|recorded an issue" $OUT/gputests.log | head -20
M=/tmp/m; mkdir -p $M
python3 $D/baselines.py --export $M --models resnet50,mobilenet_v2 --batches 1 --no-compile --quick --no-ceilings > $OUT/base.log 2>&1 || tail -5 $OUT/base.log
for m in resnet50 mobilenet_v2; do
  echo "== $m"
  $K compare $M/$m.onnx --device cuda --reference $M/$m.io_b1.npz 2>&1 | tail -1
  for b in 1 64; do for l in 0 3 3; do
    echo "-- $m b$b level $l"; $K bench $M/$m.onnx --device cuda --batch $b --level $l --duration 2 2>&1 | grep -E "compute"
  done; done
done
