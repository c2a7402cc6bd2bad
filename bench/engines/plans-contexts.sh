#!/usr/bin/env bash
# Device run for plans and contexts: GPU tests; ResNet-50 and BERT plans (cold build time, memory report,
# equal bytes, load time, outputs vs the reference); batch-1 latency with and without CUDA graphs;
# --streams 1/2/4 throughput.
set -u
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
python3 $D/baselines.py --export $M --models resnet50,bert-base --batches 1 --no-compile --quick --no-ceilings > $OUT/export.log 2>&1 || tail -5 $OUT/export.log
for m in resnet50 bert-base; do
  echo "== $m: plan for batch 64: cold (NVRTC, cuBLASLt timing), then warm (same timing cache)"
  rm -f /tmp/tc-$m.json
  for i in 1 2; do
    s=$(date +%s.%N); $K build $M/$m.onnx --device cuda --batch 64 --memory-report --timing-cache /tmp/tc-$m.json -o /tmp/$m-$i.kiln 2>&1 | grep -v "^device"; e=$(date +%s.%N)
    echo "   wall $(python3 -c "print(round($e-$s,2))") s"
  done
  cmp /tmp/$m-1.kiln /tmp/$m-2.kiln && echo "   cold and warm plans are byte-identical" || echo "   PLANS DIFFER"
  python3 -c "import json;d=json.load(open('/tmp/tc-$m.json'));print('   timing cache:',len(d['tactics']),'tactics')"
  $K inspect /tmp/$m-1.kiln | sed -n 1,12p
  echo "-- bench the plan at batch 64 (load: no NVRTC compile)"
  s=$(date +%s.%N); $K bench /tmp/$m-1.kiln --batch 64 --duration 2 2>&1 | grep -E "first run|compute|throughput"; e=$(date +%s.%N)
  echo "   whole command $(python3 -c "print(round($e-$s,2))") s"
  echo "-- plan for batch 1: outputs vs the strict FP32 reference"
  $K build $M/$m.onnx --device cuda --batch 1 -o /tmp/$m-b1.kiln 2>&1 | grep -v "^device"
  $K compare /tmp/$m-b1.kiln --reference $M/$m.io_b1.npz 2>&1 | tail -1
done
echo "== batch-1 latency: CUDA graphs on (default) and off"
for m in resnet50 bert-base; do for g in "" "--no-cuda-graph"; do
  echo "-- $m b1 ${g:-cuda graph}"; $K bench $M/$m.onnx --device cuda --batch 1 --duration 2 $g 2>&1 | grep -E "compute|end to end|throughput"
done; done
echo "== streams (batch 1 and 8)"
for m in resnet50 bert-base; do for b in 1 8; do for s in 1 2 4; do
  echo "-- $m b$b streams $s"; $K bench $M/$m.onnx --device cuda --batch $b --duration 1 --warmup 200 --streams $s 2>&1 | grep -E "throughput|end to end"
done; done; done
