# On the GPU machine (carried .device folder): every target of the precision issue from one call. First
# `fp16-models.sh` (the digits demo on the GPU, the four bench models in float16 against the strict-FP32
# reference and beside PyTorch eager, CUDA graphs and torch.compile FP16 in the same call), then ResNet-50 in
# int8 + float16 (calibrated with `--calibrator percentile` on 32 random images) timed alternately with the
# float16 engine just built, `kiln bench --duration 3`, three rounds. No GPU tests (run them in the call before).
# Use: bash bench/precision/targets.sh [extra baselines.py options; default --compile-budget 200 --ort-min-time 0.5]
set -o pipefail
options=${*:---compile-budget 200 --ort-min-time 0.5}
# shellcheck disable=SC2086
KILN_GPU_TESTS=0 bash bench/precision/fp16-models.sh resnet50,mobilenet_v2,bert-base,vit_b_16 -- $options
KILN_GPU_TESTS=0 source bench/engines/common.sh
echo "== ResNet-50 int8 + float16 beside float16, batch 64"
python3 bench/precision/random-calibration.py $M resnet50
$K build $M/resnet50.onnx -o /tmp/resnet50-int8.kiln --device cuda --batch 64 --int8 --fp16 \
    --calibrator percentile --calibration $M/resnet50.calibration.npz > "$OUT/build-int8.log" 2>&1 ||
    tail -3 "$OUT/build-int8.log"
$K compare /tmp/resnet50-int8.kiln --reference $M/resnet50.io_b1.npz --tolerance 1 2>&1 | tail -1
for round in 1 2 3; do
    for p in fp16 int8; do
        printf "round %s %s: " $round $p
        $K bench /tmp/resnet50-$p.kiln --batch 64 --duration 3 2>&1 | grep -E "^    compute" | awk '{print $4, "ms"}'
    done
done
