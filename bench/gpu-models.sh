#!/usr/bin/env bash
# The GPU-machine run of the CUDA backend: exports ResNet-50, MobileNetV2, BERT-base and ViT-B/16 with the
# shared baselines.py (PyTorch timings in the same run), checks Kiln's CUDA outputs against each model's
# strict-FP32 reference (`kiln compare --reference`), benchmarks Kiln at each batch, and prints one table.
#
# Use: bench/gpu-models.sh KILN BASELINES_PY OUT_DIR [MODELS] [BATCHES] [-- extra baselines.py options]
#   MODELS: comma list (default all four); BATCHES: space-separated in one argument (default "1 64").
# Kiln is timed twice per model and batch: strict FP32 (kiln_fp32) and with --tf32 (kiln_tf32).
# Writes OUT_DIR/base.json, base.log, compare.log, bench.log and kiln.json (all Kiln result rows).
# KILN_MODELS_DIR=DIR keeps the exported models (and references) there for later runs.
set -uo pipefail
kiln=$1
baselines=$2
out=$3
models=${4:-resnet50,mobilenet_v2,bert-base,vit_b_16}
batches=${5:-"1 64"}
shift $(($# < 5 ? $# : 5))
[[ ${1:-} == "--" ]] && shift
mkdir -p "$out"
export PYTHONUNBUFFERED=1
if [[ -n ${KILN_MODELS_DIR:-} ]]; then
    work=$KILN_MODELS_DIR
    mkdir -p "$work"
else
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
fi

echo "== baselines (export + PyTorch timings)"
# shellcheck disable=SC2086
python3 "$baselines" --export "$work" --models "$models" --batches $batches --json "$out/base.json" "$@" \
    >"$out/base.log" 2>&1 || { tail -20 "$out/base.log"; exit 1; }
tail -3 "$out/base.log"

status=0
echo "== correctness: CUDA outputs vs the strict FP32 reference (batch 1)"
for m in ${models//,/ }; do
    "$kiln" compare "$work/$m.onnx" --device cuda --reference "$work/$m.io_b1.npz" 2>&1 | tee -a "$out/compare.log" \
        || status=1
done

echo "== kiln bench (strict FP32, then TF32)"
for m in ${models//,/ }; do
    for b in $batches; do
        for precision in fp32 tf32; do
            flag=()
            [[ $precision == tf32 ]] && flag=(--tf32)
            "$kiln" bench "$work/$m.onnx" --device cuda --batch "$b" --cuda-graph --duration 2 "${flag[@]}" \
                --json "$work/kiln-$m-b$b-$precision.json" 2>&1 | tee -a "$out/bench.log" || status=1
        done
    done
done
python3 - "$out/kiln.json" "$work"/kiln-*.json <<'PY'
import json, sys
rows = []
for path in sys.argv[2:]:
    rows += json.load(open(path))["results"]
json.dump({"results": rows}, open(sys.argv[1], "w"), indent=1)
PY

echo "== side by side"
python3 "$baselines" --compare "$out/base.json" "$out/kiln.json"
exit $status
