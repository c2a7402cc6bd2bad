# On the GPU machine (carried .device folder): ResNet-50 and MobileNetV2 (baselines.py's seeded random weights)
# in int8 on CUDA: calibrated on 32 random N(0,1) images like the reference input, with each calibrator, the
# accuracy guard per layer, the outputs against the float32 reference, and speed beside float32.
set -o pipefail
D=.device
K=$D/kiln
M=/tmp/m
xz -dc $D/kiln.xz > $K && chmod +x $K
mkdir -p $M
python3 $D/baselines.py --export $M --models resnet50,mobilenet_v2 --batches 1 --no-compile --quick --no-ceilings \
    > "$OUT/export.log" 2>&1 || tail -5 "$OUT/export.log"
python3 bench/precision/random-calibration.py $M resnet50 mobilenet_v2
for name in resnet50 mobilenet_v2; do
    for cal in entropy minmax percentile; do
        echo "== $name int8, $cal"
        $K build $M/$name.onnx -o /tmp/$name-$cal.kiln --device cuda --batch 1 --int8 --calibrator $cal \
            --calibration $M/$name.calibration.npz --per-layer > "$OUT/$name-$cal.log" 2>&1
        grep -E "precision:|rel. error" "$OUT/$name-$cal.log" | head -4
        $K compare /tmp/$name-$cal.kiln --reference $M/$name.io_b1.npz --tolerance 1 2>&1 | tail -1
    done
    echo "-- $name batch 1, fp32 then int8 (entropy)"
    $K bench $M/$name.onnx --device cuda --batch 1 --duration 2 2>&1 | grep -E "compute"
    $K bench /tmp/$name-entropy.kiln --batch 1 --duration 2 2>&1 | grep -E "compute"
done
