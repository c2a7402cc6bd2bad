# On the GPU machine (carried .device folder): the CUDA kernel tests, then ResNet-50 (baselines.py's seeded
# random weights) at batch 64 in float16, in int8 with activations int8 between the chained convolutions
# (the default) and in int8 without chains (`--no-fuse int8-chaining`), built and timed in one call: median
# compute time from `kiln bench`, each engine's outputs against the float32 reference, and the chained
# engine's per-layer profile.
set -o pipefail
source bench/engines/common.sh
python3 $D/baselines.py --export $M --models resnet50 --batches 1 --no-compile --quick --no-ceilings \
    > "$OUT/export.log" 2>&1 || tail -5 "$OUT/export.log"
python3 bench/precision/random-calibration.py $M resnet50
R=$M/resnet50
int8="--int8 --calibrator percentile --calibration $R.calibration.npz --calibration-cache $OUT/calibration.txt"
echo "== builds (batch 64)"
$K build $R.onnx -o /tmp/fp16.kiln --device cuda --batch 64 --fp16 > "$OUT/build-fp16.log" 2>&1
$K build $R.onnx -o /tmp/int8.kiln --device cuda --batch 64 $int8 > "$OUT/build-int8.log" 2>&1
$K build $R.onnx -o /tmp/int8-unchained.kiln --device cuda --batch 64 $int8 --no-fuse int8-chaining \
    > "$OUT/build-int8-unchained.log" 2>&1
for p in fp16 int8 int8-unchained; do
    echo "-- $p: $(grep -E "chained|built" "$OUT/build-$p.log" | tr '\n' ' ' | cut -c1-200)"
    $K compare /tmp/$p.kiln --reference $R.io_b1.npz --tolerance 1 2>&1 | tail -1
done
$K inspect /tmp/int8.kiln > "$OUT/inspect-int8.txt" 2>&1
for what in "output=.*:stored" "= quantize\[" "= dequantize\[" "= transpose\["; do
    echo "plan lines matching '$what': $(grep -c "$what" "$OUT/inspect-int8.txt")"
done
echo "== speed (median compute, batch 64, then batch 1 where the plan allows)"
for round in 1 2; do
    for p in fp16 int8 int8-unchained; do
        printf "round %s %s b64: " $round $p
        $K bench /tmp/$p.kiln --batch 64 --duration 3 2>&1 | grep -E "^    compute" | awk '{print $4, "ms"}'
    done
done
echo "== int8 chained, batch 64, per-layer profile (r50-int8-profile.log)"
$K bench /tmp/int8.kiln --batch 64 --duration 1 --profile > "$OUT/r50-int8-profile.log" 2>&1
grep -A18 -i "layer" "$OUT/r50-int8-profile.log" | head -22
