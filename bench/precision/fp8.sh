# On the GPU machine (carried .device folder): the CUDA kernel tests (not with KILN_GPU_TESTS=0); the digits
# model quantized to FP8 (models/digits-fp8) on the GPU against ONNX Runtime's outputs; then each model of
# MODELS (default bert-base; baselines.py's seeded random weights) with an FP8 Q/DQ copy (fp8-qdq.py, at opset
# 19), built at batch 64 in float16 (the plain model), FP8 (float32 around the
# products) and FP8 + float16, each engine's outputs against the float32 reference, and the median compute time
# from `kiln bench` (two rounds).
set -o pipefail
source bench/engines/common.sh
echo "== digits-fp8 on the GPU against ONNX Runtime (and top-1 on the test split)"
$K compare models/digits-fp8/model.onnx --reference models/digits-fp8/reference.npz --tolerance 1e-2 \
    --device cuda 2>&1 | tail -2
python3 -c "import numpy as np; np.save('/tmp/x.npy', np.load('models/digits-fp8/reference.npz')['input__input'])"
$K run models/digits-fp8/model.onnx --device cuda --input input=/tmp/x.npy --output-dir /tmp/d8 > /dev/null 2>&1
python3 -c "
import numpy as np
r = np.load('models/digits-fp8/reference.npz'); y = np.load('/tmp/d8/logits.npy')
print(f\"top-1 {np.mean(y.argmax(1) == r['labels']):.4f} on the GPU, {np.mean(r['output__logits'].argmax(1) == r['labels']):.4f} ONNX Runtime\")
"
MODELS=${MODELS:-bert-base}
python3 $D/baselines.py --export $M --models $MODELS --batches 1 --no-compile --quick --no-ceilings \
    > "$OUT/export.log" 2>&1 || tail -5 "$OUT/export.log"
for model in ${MODELS//,/ }; do
    R=$M/$model
    python3 bench/precision/fp8-qdq.py $R.onnx $R.io_b1.npz $R-fp8.onnx 2>&1 | tail -2
    echo "== $model: builds (batch 64)"
    $K build $R.onnx -o /tmp/$model-fp16.kiln --device cuda --batch 64 --fp16 > "$OUT/$model-build-fp16.log" 2>&1
    $K build $R-fp8.onnx -o /tmp/$model-fp8.kiln --device cuda --batch 64 > "$OUT/$model-build-fp8.log" 2>&1
    $K build $R-fp8.onnx -o /tmp/$model-fp8fp16.kiln --device cuda --batch 64 --fp16 \
        > "$OUT/$model-build-fp8fp16.log" 2>&1
    $K inspect /tmp/$model-fp8.kiln > "$OUT/$model-fp8-inspect.txt" 2>&1
    echo "fp8 engine: $(grep -c 'matMul.int8\[input=.*float8e4m3fn' "$OUT/$model-fp8-inspect.txt") float8 matMuls"
    for p in fp16 fp8 fp8fp16; do
        echo "-- $p: $(tail -1 "$OUT/$model-build-$p.log" | cut -c1-200)"
        $K compare /tmp/$model-$p.kiln --reference $R.io_b1.npz --tolerance 1 2>&1 | tail -1
    done
    echo "== $model: speed (median compute ms, batch 64)"
    for round in 1 2; do
        for p in fp16 fp8 fp8fp16; do
            printf "round %s %s b64: " $round $p
            $K bench /tmp/$model-$p.kiln --batch 64 --duration 3 2>&1 | grep -E "^    compute" | awk '{print $4, "ms"}'
        done
    done
done
