# bfloat16 engines and float16 engine I/O on the GPU machine (carried .device folder): each model exported by
# baselines.py built with --bf16, compared with the strict-FP32 reference at batch 1 and timed at batch 64;
# then ResNet-50 built with --fp16 --io-type float16 and run on float16 inputs. Logs in $OUT/logs.tgz.
# Use: bash bench/precision/bf16-check.sh [MODELS]
set -o pipefail
models=${1:-resnet50,mobilenet_v2,bert-base,vit_b_16}
KILN_GPU_TESTS=0 source bench/engines/common.sh
L=$OUT/logs
mkdir -p $L
python3 $D/baselines.py --export $M --models "$models" --batches 1 --no-compile --quick --no-ceilings \
    > $L/export.log 2>&1 || tail -5 $L/export.log
for m in ${models//,/ }; do
    $K build $M/$m.onnx -o /tmp/$m-bf16.kiln --device cuda --bf16 --batch 64 > $L/build-$m.log 2>&1 ||
        tail -3 $L/build-$m.log
    grep -E "^precision:" $L/build-$m.log
    $K compare /tmp/$m-bf16.kiln --reference $M/$m.io_b1.npz --tolerance 0.2 > $L/compare-$m.log 2>&1
    grep -v "^device" $L/compare-$m.log
    $K bench /tmp/$m-bf16.kiln --batch 64 --cuda-graph --duration 2 > $L/bench-$m.log 2>&1 || tail -3 $L/bench-$m.log
    grep -E "^    compute" $L/bench-$m.log | sed "s/^/$m b64 bf16 /"
done
echo "== resnet50 --fp16 --io-type float16"
$K build $M/resnet50.onnx -o /tmp/r50-io16.kiln --device cuda --fp16 --io-type float16 --batch 8 \
    > $L/build-io16.log 2>&1 || tail -3 $L/build-io16.log
$K inspect /tmp/r50-io16.kiln 2>&1 | grep -iE "^(inputs|outputs)|float16\[" | head -4
python3 - <<'PY'
import numpy as np
z = np.load("/tmp/m/resnet50.io_b1.npz")
name = [k for k in z.files if k.startswith("input__")][0]
np.savez("/tmp/r50-in16.npz", **{name[len("input__"):]: z[name].astype(np.float16)})
PY
mkdir -p /tmp/r50-out16
$K run /tmp/r50-io16.kiln --inputs /tmp/r50-in16.npz --output-dir /tmp/r50-out16 > $L/run-io16.log 2>&1 ||
    tail -3 $L/run-io16.log
python3 - <<'PY'
import glob
import numpy as np
ref = np.load("/tmp/m/resnet50.io_b1.npz")
r = [ref[k] for k in ref.files if k.startswith("output__")][0]
o = np.load(sorted(glob.glob("/tmp/r50-out16/*.npy"))[0])
print("io-type float16 output", o.dtype, o.shape, "rel. error vs FP32 reference",
      float(np.linalg.norm(o.astype(np.float64) - r) / np.linalg.norm(r)))
PY
tar -czf $OUT/logs.tgz -C $OUT logs && rm -rf $L
