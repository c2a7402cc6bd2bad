# On the GPU machine (carried .device folder as in bench/engines/README.md): the CUDA kernel tests, `kiln demo`
# on the GPU and on the CPU, the ONNX-Runtime-quantized digits model on the GPU, and ResNet-50 in int8 beside
# float32 (calibrated on its one reference input: a check that a real network quantizes and runs, not an
# accuracy claim).
set -o pipefail
source bench/engines/common.sh
echo "== demo, cuda"
$K demo --device cuda --json "$OUT/demo-cuda.json" 2>&1 | tee "$OUT/demo-cuda.log"
echo "== demo, cpu"
$K demo --device cpu --json "$OUT/demo-cpu.json" 2>&1 | tee "$OUT/demo-cpu.log"
echo "== Q/DQ digits on cuda"
$K compare models/digits-qdq/model.onnx --reference models/digits-qdq/reference.npz --tolerance 2e-3 \
    --device cuda 2>&1 | tail -2
echo "== ResNet-50 int8"
python3 $D/baselines.py --export $M --models resnet50 --batches 1 --no-compile --quick --no-ceilings \
    > "$OUT/export.log" 2>&1 || tail -5 "$OUT/export.log"
python3 - "$M" <<'PYEOF'
import sys, numpy as np
m = sys.argv[1]
ref = np.load(f"{m}/resnet50.io_b1.npz")
x = [ref[k] for k in ref.files if k.startswith("input__")][0]
np.savez(f"{m}/calibration.npz", **{k: ref[k] for k in ref.files if k.startswith("input__")})
PYEOF
$K build $M/resnet50.onnx -o /tmp/r50-int8.kiln --device cuda --batch 64 --int8 \
    --calibration $M/calibration.npz 2>&1 | head -4 | tee "$OUT/r50-int8-build.log"
$K compare /tmp/r50-int8.kiln --reference $M/resnet50.io_b1.npz --tolerance 1 2>&1 | tail -2
for b in 1 64; do
    echo "-- batch $b: fp32, int8"
    $K bench $M/resnet50.onnx --device cuda --batch $b --duration 2 2>&1 | grep -E "compute|throughput"
    $K bench /tmp/r50-int8.kiln --batch $b --duration 2 2>&1 | grep -E "compute|throughput"
done
