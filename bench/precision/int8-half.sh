# On the GPU machine (carried .device folder): the CUDA kernel tests (not with KILN_GPU_TESTS=0), then each
# model of MODELS (default resnet50; baselines.py's seeded random weights) at batch 64 in float16, in int8
# (chained, every other layer float32) and in int8 + float16 (`--int8 --fp16`: the layers left out of int8 run
# in float16), built and timed in one call: median compute time from `kiln bench` (two rounds), each engine's
# outputs against the float32 reference, and the precision report's layer counts.
set -o pipefail
source bench/engines/common.sh
MODELS=${MODELS:-resnet50}
python3 $D/baselines.py --export $M --models $MODELS --batches 1 --no-compile --quick --no-ceilings \
    > "$OUT/export.log" 2>&1 || tail -5 "$OUT/export.log"
for model in ${MODELS//,/ }; do
    python3 bench/precision/random-calibration.py $M $model
    R=$M/$model
    int8="--int8 --calibrator percentile --calibration $R.calibration.npz --calibration-cache $OUT/$model.calibration.txt"
    echo "== $model: builds (batch 64)"
    $K build $R.onnx -o /tmp/$model-fp16.kiln --device cuda --batch 64 --fp16 > "$OUT/$model-build-fp16.log" 2>&1
    $K build $R.onnx -o /tmp/$model-int8.kiln --device cuda --batch 64 $int8 > "$OUT/$model-build-int8.log" 2>&1
    $K build $R.onnx -o /tmp/$model-int8fp16.kiln --device cuda --batch 64 $int8 --fp16 \
        > "$OUT/$model-build-int8fp16.log" 2>&1
    for p in fp16 int8 int8fp16; do
        echo "-- $p: $(grep -E "^precision|chained|built" "$OUT/$model-build-$p.log" | tr '\n' ' ' | cut -c1-240)"
        $K compare /tmp/$model-$p.kiln --reference $R.io_b1.npz --tolerance 1 2>&1 | tail -1
    done
    echo "== $model: speed (median compute ms, batch 64)"
    for round in 1 2; do
        for p in fp16 int8 int8fp16; do
            printf "round %s %s b64: " $round $p
            $K bench /tmp/$model-$p.kiln --batch 64 --duration 3 2>&1 | grep -E "^    compute" | awk '{print $4, "ms"}'
        done
    done
done
