# On the GPU machine (carried .device folder): every target of the precision issue from one call. First
# ResNet-50 in int8 + float16 (calibrated with `--calibrator percentile` on 32 random images) timed alternately
# with its float16 engine, `kiln bench --duration 3`, three rounds; then `fp16-models.sh` (the digits demo on
# the GPU, the four bench models in float16 against the strict-FP32 reference and beside PyTorch eager, CUDA
# graphs and torch.compile FP16 in the same call). No GPU tests (run them in the call before). The whole takes
# close to a device call's 600 s: the first form (int8 last, `--compile-budget 200 --ort-min-time 0.5`) ran out
# of time before the int8 timing; the default options below trim PyTorch's repetitions.
# Use: bash bench/precision/targets.sh [baselines.py options; default --compile-budget 150 --ort-min-time 0.3
#   --rounds 1]
set -o pipefail
options=${*:---compile-budget 150 --ort-min-time 0.3 --rounds 1}
KILN_GPU_TESTS=0 source bench/engines/common.sh
echo "== ResNet-50 int8 + float16 beside float16, batch 64"
python3 $D/baselines.py --export $M --models resnet50 --batches 1 --no-compile --quick --no-ceilings \
    > "$OUT/export-int8.log" 2>&1 || tail -5 "$OUT/export-int8.log"
python3 bench/precision/random-calibration.py $M resnet50
$K build $M/resnet50.onnx -o /tmp/r50-fp16.kiln --device cuda --batch 64 --fp16 > "$OUT/build-r50-fp16.log" 2>&1 ||
    tail -3 "$OUT/build-r50-fp16.log"
$K build $M/resnet50.onnx -o /tmp/r50-int8.kiln --device cuda --batch 64 --int8 --fp16 \
    --calibrator percentile --calibration $M/resnet50.calibration.npz > "$OUT/build-r50-int8.log" 2>&1 ||
    tail -3 "$OUT/build-r50-int8.log"
$K compare /tmp/r50-int8.kiln --reference $M/resnet50.io_b1.npz --tolerance 1 2>&1 | tail -1
for round in 1 2 3; do
    for p in fp16 int8; do
        printf "round %s %s: " $round $p
        $K bench /tmp/r50-$p.kiln --batch 64 --duration 3 2>&1 | grep -E "^    compute" | awk '{print $4, "ms"}'
    done
done
# shellcheck disable=SC2086
KILN_GPU_TESTS=0 bash bench/precision/fp16-models.sh resnet50,mobilenet_v2,bert-base,vit_b_16 -- $options
