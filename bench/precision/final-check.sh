# On the GPU machine (carried .device folder): the CUDA kernel tests, `kiln demo` on the GPU and on the CPU (JSON
# kept), and the ONNX-Runtime-quantized digits model on the GPU against its reference.
set -o pipefail
source bench/engines/common.sh
echo "== demo, cuda"
$K demo --device cuda --json "$OUT/demo-cuda.json" 2>&1 | tee "$OUT/demo-cuda.log"
echo "== demo, cpu"
$K demo --device cpu --json "$OUT/demo-cpu.json" 2>&1 | tee "$OUT/demo-cpu.log"
echo "== Q/DQ digits on cuda"
$K compare models/digits-qdq/model.onnx --reference models/digits-qdq/reference.npz --tolerance 2e-3 \
    --device cuda 2>&1 | tail -2
$K inspect models/digits-qdq/model.onnx 2>&1 | sed -n '/^layers:/,/^$/p'
