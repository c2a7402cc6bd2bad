# On the GPU machine (carried .device folder): every target of the precision issue from one call. The four bench
# models are exported once; ResNet-50 is built in float16 and in int8 + float16 (calibrated with `--calibrator
# percentile` on 32 random images) and the two are timed alternately, `kiln bench --duration 3`, three rounds;
# then `fp16-models.sh` reuses those exports and the float16 plan (the digits demo on the GPU, the four bench
# models in float16 against the strict-FP32 reference and beside PyTorch eager, CUDA graphs and torch.compile
# FP16 in the same call). No GPU tests (run them in the call before). All of it takes more than a device call's
# 600 s (the export alone about 130 s): export in the call before (`bash bench/precision/targets.sh --export`,
# with the GPU tests) on the same warm machine, and this call exports only the models it does not find.
# Use: bash bench/precision/targets.sh [--export | baselines.py options; default --compile-budget 150
#   --ort-min-time 0.3 --rounds 1]
set -o pipefail
options=${*:---compile-budget 150 --ort-min-time 0.3 --rounds 1}
models=resnet50,mobilenet_v2,bert-base,vit_b_16
KILN_GPU_TESTS=0 source bench/engines/common.sh
mkdir -p "$OUT/logs"
rm -f /tmp/*-fp16.kiln
export_missing $models "$OUT/logs/export.log"
[[ $1 == --export ]] && exit 0
echo "== ResNet-50 int8 + float16 beside float16, batch 64"
python3 bench/precision/random-calibration.py $M resnet50
/usr/bin/time -f "build %e s" $K build $M/resnet50.onnx -o /tmp/resnet50-fp16.kiln --device cuda --batch 64 \
    --fp16 > "$OUT/logs/build-resnet50.log" 2>&1 || tail -3 "$OUT/logs/build-resnet50.log"
$K build $M/resnet50.onnx -o /tmp/resnet50-int8.kiln --device cuda --batch 64 --int8 --fp16 \
    --calibrator percentile --calibration $M/resnet50.calibration.npz > "$OUT/logs/build-resnet50-int8.log" 2>&1 ||
    tail -3 "$OUT/logs/build-resnet50-int8.log"
$K compare /tmp/resnet50-int8.kiln --reference $M/resnet50.io_b1.npz --tolerance 1 2>&1 | tail -1
for round in 1 2 3; do
    for p in fp16 int8; do
        printf "round %s %s: " $round $p
        $K bench /tmp/resnet50-$p.kiln --batch 64 --duration 3 2>&1 | grep -E "^    compute" | awk '{print $4, "ms"}'
    done
done
# shellcheck disable=SC2086
KILN_GPU_TESTS=0 KILN_REUSE=1 bash bench/precision/fp16-models.sh $models -- $options
