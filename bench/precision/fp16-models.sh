# On the GPU machine (carried .device folder): the CUDA kernel tests (float32, float16 and bfloat16 cases),
# `kiln demo` on the GPU (fp32, fp16, int8), then ResNet-50, MobileNetV2, BERT-base and ViT-B/16 exported by
# baselines.py: each built with --fp16, its batch-1 outputs against the strict-FP32 reference, and its median
# compute time at batch 1 and 64 (CUDA graphs) and a per-layer profile at 64, then baselines.py in the same
# call and the side-by-side table. Logs in $OUT/logs.tgz, the table in $OUT/side-by-side.txt.
# Use: bash bench/precision/fp16-models.sh [MODELS] [-- extra baselines.py options, e.g. --no-compile]
# Models already exported to /tmp/m are not exported again. KILN_REUSE=1 (set by targets.sh, which built some
# plans in the same call): a plan already at /tmp/MODEL-fp16.kiln is used as it is.
set -o pipefail
models=${1:-resnet50,mobilenet_v2,bert-base,vit_b_16}
shift $(($# < 1 ? $# : 1))
[[ ${1:-} == "--" ]] && shift
source bench/engines/common.sh
FINAL=$OUT
OUT=$OUT/logs
mkdir -p $OUT
mv $FINAL/gputests.log $OUT/ 2>/dev/null
echo "== demo, cuda"
$K demo --device cuda --json "$OUT/demo-cuda.json" --seconds 1 2>&1 | tee "$OUT/demo-cuda.log"
export_missing "$models" "$OUT/export.log"
for m in ${models//,/ }; do
    echo "== $m"
    [[ ${KILN_REUSE:-0} == 1 && -f /tmp/$m-fp16.kiln ]] ||
        /usr/bin/time -f "build %e s" $K build $M/$m.onnx -o /tmp/$m-fp16.kiln --device cuda --fp16 --batch 64 \
            > "$OUT/build-$m.log" 2>&1
    grep -E "precision:|build [0-9]|error" "$OUT/build-$m.log" | head -3
    grep -c "  float32 " "$OUT/build-$m.log" | sed 's/^/layers kept float32: /'
    $K compare /tmp/$m-fp16.kiln --reference $M/$m.io_b1.npz --tolerance 5e-2 > "$OUT/compare-$m.log" 2>&1
    grep -v "^device" "$OUT/compare-$m.log"
    for b in 1 64; do
        $K bench /tmp/$m-fp16.kiln --batch $b --cuda-graph --duration 2 --json "$OUT/kiln-$m-b$b.json" \
            > "$OUT/bench-$m-b$b.log" 2>&1 || tail -3 "$OUT/bench-$m-b$b.log"
        grep -E "^    compute" "$OUT/bench-$m-b$b.log" | sed "s/^/$m b$b fp16 /"
    done
    $K bench /tmp/$m-fp16.kiln --batch 64 --duration 1 --profile > "$OUT/profile-$m-b64.log" 2>&1
    sed -n '/per-layer profile/,+6p' "$OUT/profile-$m-b64.log"
    awk '$5 ~ /attention/ {a += $2; n++} /sum of medians/ {t = $4} END {printf "  attention: %d layers, %.3f ms of %.3f ms\n", n, a, t}' \
        "$OUT/profile-$m-b64.log"
done
python3 - "$OUT/kiln.json" "$OUT"/kiln-*.json <<'PY'
import json, sys
rows = []
for path in sys.argv[2:]:
    try: rows += json.load(open(path))["results"]
    except Exception as e: print("skip", path, e)
json.dump({"results": rows}, open(sys.argv[1], "w"), indent=1)
PY
echo "== PyTorch in the same call"
python3 $D/baselines.py --models "$models" --batches 1 64 --no-ceilings --json "$OUT/base.json" "$@" \
    > "$OUT/base.log" 2>&1 || tail -5 "$OUT/base.log"
python3 $D/baselines.py --compare "$OUT/base.json" "$OUT/kiln.json" 2>&1 | tee "$FINAL/side-by-side.txt"
tar -czf $FINAL/logs.tgz -C $FINAL logs && rm -rf $OUT
