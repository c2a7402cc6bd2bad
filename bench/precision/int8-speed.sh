# On the GPU machine (carried .device folder): the CUDA kernel tests, `kiln demo` on the GPU, and ResNet-50 /
# MobileNetV2 (baselines.py's seeded random weights) in int8 beside float32 at batch 1 and 64, median compute
# time from `kiln bench`, with the int8 outputs against the float32 reference (random weights compound int8
# error layer by layer; see BENCHMARKS.md).
set -o pipefail
source bench/engines/common.sh
echo "== demo, cuda"
$K demo --device cuda --json "$OUT/demo-cuda.json" 2>&1 | tee "$OUT/demo-cuda.log"
echo "== Q/DQ digits on cuda"
$K compare models/digits-qdq/model.onnx --reference models/digits-qdq/reference.npz --tolerance 2e-3 \
    --device cuda 2>&1 | tail -1
python3 $D/baselines.py --export $M --models resnet50,mobilenet_v2 --batches 1 --no-compile --quick --no-ceilings \
    > "$OUT/export.log" 2>&1 || tail -5 "$OUT/export.log"
python3 bench/precision/random-calibration.py $M resnet50 mobilenet_v2
for name in resnet50 mobilenet_v2; do
    echo "== $name"
    $K build $M/$name.onnx -o /tmp/$name-fp32.kiln --device cuda --batch 64 > /dev/null 2>&1
    $K build $M/$name.onnx -o /tmp/$name-int8.kiln --device cuda --batch 64 --int8 --calibrator percentile \
        --calibration $M/$name.calibration.npz --calibration-cache "$OUT/$name-calibration.txt" 2>&1 |
        grep -E "built|precision:|rel. error" | head -3
    $K compare /tmp/$name-int8.kiln --reference $M/$name.io_b1.npz --tolerance 1 2>&1 | tail -1
    for b in 1 64; do
        for p in fp32 int8; do
            printf "%s b%s %s: " $name $b $p
            $K bench /tmp/$name-$p.kiln --batch $b --duration 3 2>&1 | grep -E "^    compute" | awk '{print "median compute", $4, "ms"}'
        done
    done
done
echo "== ResNet-50 int8 batch 64, per-layer profile (top of the table in r50-int8-profile.log)"
$K bench /tmp/resnet50-int8.kiln --batch 64 --duration 1 --profile > "$OUT/r50-int8-profile.log" 2>&1
grep -A12 -i "layer" "$OUT/r50-int8-profile.log" | head -16
echo "== PyTorch in the same call (eager FP32/FP16, FP16 CUDA graph; no torch.compile)"
python3 $D/baselines.py --models resnet50,mobilenet_v2 --batches 1 64 --no-compile --no-ceilings \
    --json "$OUT/base.json" > "$OUT/base.log" 2>&1 || tail -5 "$OUT/base.log"
tail -14 "$OUT/base.log"
