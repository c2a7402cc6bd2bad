#!/usr/bin/env bash
# Device check of the last commit: CUDA tests; a ResNet-50 plan built twice with one timing cache (equal
# bytes, its own tactics only), loaded, and compared with the reference.
set -u
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
python3 $D/baselines.py --export $M --models resnet50,mobilenet_v2 --batches 1 --no-compile --quick --no-ceilings \
    > $OUT/base.log 2>&1 || tail -5 $OUT/base.log
rm -f /tmp/tc.json
for m in resnet50 mobilenet_v2 resnet50; do
  $K build $M/$m.onnx --device cuda --batch 1 --timing-cache /tmp/tc.json -o /tmp/$m-$RANDOM.kiln 2>&1 | grep -v "^device"
done
ls /tmp/resnet50-*.kiln | head -2 | xargs cmp && echo "   the two ResNet-50 plans are byte-identical"
python3 -c "import json;print('   timing cache:',len(json.load(open('/tmp/tc.json'))['tactics']),'tactics')"
for p in /tmp/resnet50-*.kiln /tmp/mobilenet_v2-*.kiln; do
  $K inspect $p | grep level
  $K inspect $p --verbose | grep -c "^  cu" | sed 's/^/   tactics listed: /'
done
P=$(ls /tmp/resnet50-*.kiln | head -1)
$K compare $P --reference $M/resnet50.io_b1.npz 2>&1 | tail -1
