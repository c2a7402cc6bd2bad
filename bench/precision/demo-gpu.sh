# On the GPU machine (see bench/engines/README.md for the carried .device folder): the CUDA kernel tests, then
# `kiln demo` on the GPU and on the CPU, and an int8 build of the digits model on the GPU with the accuracy
# guard per layer, checked against the test split.
set -o pipefail
source bench/engines/common.sh
echo "== demo, cuda"
$K demo --device cuda --json "$OUT/demo-cuda.json" 2>&1 | tee "$OUT/demo-cuda.log"
echo "== demo, cpu"
$K demo --device cpu --json "$OUT/demo-cpu.json" 2>&1 | tee "$OUT/demo-cpu.log"
echo "== int8 plan on cuda"
$K build models/digits/model.onnx -o /tmp/digits-int8.kiln --device cuda --int8 \
    --calibration models/digits/calibration.npz --calibration-cache "$OUT/calibration.txt" --per-layer 2>&1 |
    tee "$OUT/build-int8.log"
$K compare /tmp/digits-int8.kiln --reference models/digits/test.npz --tolerance 0.05 2>&1 | tail -2
$K bench /tmp/digits-int8.kiln --batch 64 --duration 2 2>&1 | tail -12
