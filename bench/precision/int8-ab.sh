# On the GPU machine: ResNet-50 (baselines.py's seeded random weights) built at batch 64 in int8 + float16 by
# two kiln binaries, the carried .device/kiln.xz (B, this tree) and .device/kiln-prev.xz (A, an earlier
# commit), with one calibration cache, then timed alternately (`kiln bench --duration 3`, median compute ms),
# three rounds: an A/B of a kernel change at engine level in one call. No GPU tests (KILN_GPU_TESTS=0).
set -o pipefail
KILN_GPU_TESTS=0 source bench/engines/common.sh
xz -dc $D/kiln-prev.xz > $D/kiln-prev && chmod +x $D/kiln-prev
python3 $D/baselines.py --export $M --models resnet50 --batches 1 --no-compile --quick --no-ceilings \
    > "$OUT/export.log" 2>&1 || tail -5 "$OUT/export.log"
python3 bench/precision/random-calibration.py $M resnet50
R=$M/resnet50
int8="--int8 --fp16 --calibrator percentile --calibration $R.calibration.npz --calibration-cache $OUT/calibration.txt"
$D/kiln-prev build $R.onnx -o /tmp/a.kiln --device cuda --batch 64 $int8 > "$OUT/build-a.log" 2>&1
$K build $R.onnx -o /tmp/b.kiln --device cuda --batch 64 $int8 > "$OUT/build-b.log" 2>&1
for round in 1 2 3; do
    for p in a b; do
        kiln=$K; [[ $p == a ]] && kiln=$D/kiln-prev
        printf "round %s %s: " $round $p
        $kiln bench /tmp/$p.kiln --batch 64 --duration 3 2>&1 | grep -E "^    compute" | awk '{print $4, "ms"}'
    done
done
