#!/usr/bin/env bash
# Command-line checks of bad input: each must exit with status 1, print one error line that names the file,
# node or tensor, and leave no output file behind.
#
#   usage: scripts/cli-tests.sh KILN_BINARY PYTHON
set -uo pipefail
KILN="$1"
PY="$2"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MODEL="$ROOT/models/tinycnn/model.onnx"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
passed=0
failed=0

# expect NAME STATUS PATTERN -- command...: runs the command, checks its exit status and that its stderr is at
# most one line matching PATTERN ('-' for no pattern), besides the "device: ..." line that says which device
# `--device auto` chose.
expect() {
    local name="$1" status="$2" pattern="$3"
    shift 4
    "$@" >"$WORK/out" 2>"$WORK/all-err"
    local rc=$?
    grep -v '^device: ' "$WORK/all-err" >"$WORK/err"
    if [ "$rc" -eq "$status" ] && { [ "$pattern" = "-" ] || grep -Eq -- "$pattern" "$WORK/err"; } &&
        [ "$(wc -l <"$WORK/err")" -le 1 ]; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        echo "FAIL $name: exit $rc (want $status), stderr: $(head -c 400 "$WORK/err")"
    fi
}

# no_outputs NAME DIR: the failed command must not have written any file.
no_outputs() {
    if [ -z "$(ls -A "$2" 2>/dev/null)" ]; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        echo "FAIL $1: output files were written: $(ls -A "$2")"
    fi
}

head -c 5000 "$MODEL" >"$WORK/truncated.onnx"
printf 'definitely not protobuf' >"$WORK/garbage.onnx"
"$PY" - "$WORK" <<'PYEOF'
import sys, numpy as np, onnx
from onnx import helper, TensorProto
w = sys.argv[1]
np.save(f"{w}/small.npy", np.ones((1, 3, 16, 16), np.float32))
np.save(f"{w}/ints.npy", np.ones((1, 3, 32, 32), np.int64))
def save(name, nodes, opset=17, domains=()):
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    ops = [helper.make_opsetid("", opset)] + [helper.make_opsetid(d, 1) for d in domains]
    m = helper.make_model(g, opset_imports=ops)
    m.ir_version = 8
    open(f"{w}/{name}.onnx", "wb").write(m.SerializeToString())
save("unknown-op", [helper.make_node("Frobnicate", ["x"], ["y"], name="frob")])
save("unknown-domain", [helper.make_node("Thing", ["x"], ["y"], name="thing", domain="com.example")], domains=["com.example"])
save("identity", [helper.make_node("Identity", ["x"], ["y"], name="id")])
save("new-opset", [helper.make_node("Identity", ["x"], ["y"], name="id")], opset=40)
save("cycle", [helper.make_node("Identity", ["z"], ["t"], name="a"), helper.make_node("Identity", ["t"], ["z"], name="b"),
               helper.make_node("Identity", ["x"], ["y"], name="c")])
save("dangling", [helper.make_node("Identity", ["ghost"], ["y"], name="haunted")])
t = helper.make_tensor("w", TensorProto.FLOAT, [2], [0.0, 0.0])
del t.float_data[:]
t.data_location = TensorProto.EXTERNAL
e = t.external_data.add(); e.key = "location"; e.value = "missing-weights.bin"
g = helper.make_graph([helper.make_node("Add", ["x", "w"], ["y"], name="add")], "g",
                      [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                      [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])], [t])
m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]); m.ir_version = 8
open(f"{w}/external.onnx", "wb").write(m.SerializeToString())
PYEOF

mkdir -p "$WORK/o"
expect "nonexistent path" 1 "nowhere.onnx.*no such file" -- "$KILN" run "$WORK/nowhere.onnx"
expect "truncated file" 1 "truncated.onnx.*not a valid ONNX model" -- "$KILN" run "$WORK/truncated.onnx" --output-dir "$WORK/o"
expect "corrupt file" 1 "garbage.onnx.*not a valid ONNX model" -- "$KILN" inspect "$WORK/garbage.onnx"
expect "unknown operator" 1 "node 0 'frob' \(Frobnicate\).*not supported" -- "$KILN" run "$WORK/unknown-op.onnx"
expect "unknown domain" 1 "unknown operator domain 'com.example'" -- "$KILN" run "$WORK/unknown-domain.onnx"
expect "opset too new" 1 "opset 40 is newer than Kiln supports" -- "$KILN" inspect "$WORK/new-opset.onnx"
expect "unknown optimizer pass" 1 "no optimizer pass 'bogus'; the passes are identity-elimination" -- \
    "$KILN" inspect "$MODEL" --no-fuse bogus
expect "the layout pass switches off by name" 0 - -- "$KILN" inspect "$MODEL" --no-fuse channels-last
expect "cycle" 1 "node [0-9] '[ab]'.*cycle" -- "$KILN" run "$WORK/cycle.onnx"
expect "dangling name" 1 "node 0 'haunted'.*'ghost'" -- "$KILN" run "$WORK/dangling.onnx"
expect "missing external data" 1 "tensor 'w'.*missing-weights.bin" -- "$KILN" run "$WORK/external.onnx"
expect "wrong input shape" 1 "input 'image'.*shape" -- "$KILN" run "$MODEL" --input "image=$WORK/small.npy" --output-dir "$WORK/o"
expect "wrong input dtype" 1 "input 'image'.*dtype" -- "$KILN" run "$MODEL" --input "image=$WORK/ints.npy" --output-dir "$WORK/o"
expect "unknown input name" 1 "no input 'picture'" -- "$KILN" run "$MODEL" --input "picture=$WORK/small.npy"
expect "missing input file" 1 "absent.npy.*no such file" -- "$KILN" run "$MODEL" --input "image=$WORK/absent.npy"
expect "verify of a missing folder" 1 "no such folder" -- "$KILN" verify "$WORK/no-suite"
no_outputs "no partial outputs" "$WORK/o"

# `bench --layers` on the CPU says where the layers are listed instead of printing nothing.
expect "bench --layers on the CPU" 0 - -- "$KILN" bench "$MODEL" --device cpu --iterations 2 --layers
if grep -q "^layers: this device runs the optimized graph" "$WORK/out"; then passed=$((passed + 1)); else
    failed=$((failed + 1))
    echo "FAIL bench --layers on the CPU: no layers line in: $(head -c 400 "$WORK/out")"
fi

# The main job works: outputs written, one line per output.
expect "run the default model" 0 - -- "$KILN" run "$MODEL" --output-dir "$WORK/good" --seed 3
if [ -f "$WORK/good/probabilities.npy" ]; then passed=$((passed + 1)); else
    failed=$((failed + 1))
    echo "FAIL run the default model: probabilities.npy not written"
fi

# Plan files: two builds in two processes give the same bytes; the plan runs as the model does; damaged,
# foreign and misused plans are refused with one line.
expect "build a plan" 0 - -- "$KILN" build "$MODEL" -o "$WORK/a.kiln" --device cpu --batch 2 --memory-report
expect "build it again" 0 - -- "$KILN" build "$MODEL" -o "$WORK/b.kiln" --device cpu --batch 2
if cmp -s "$WORK/a.kiln" "$WORK/b.kiln"; then passed=$((passed + 1)); else
    failed=$((failed + 1))
    echo "FAIL plan determinism: two builds of the same model differ"
fi
expect "run the plan" 0 - -- "$KILN" run "$WORK/a.kiln" --output-dir "$WORK/from-plan" --seed 3
if cmp -s "$WORK/good/probabilities.npy" "$WORK/from-plan/probabilities.npy"; then passed=$((passed + 1)); else
    failed=$((failed + 1))
    echo "FAIL run the plan: outputs differ from the ONNX model's"
fi
expect "inspect the plan" 0 - -- "$KILN" inspect "$WORK/a.kiln" --json
expect "inspect the plan's tactics" 0 - -- "$KILN" inspect "$WORK/a.kiln" --verbose
if grep -q "^timed tactics" "$WORK/out"; then passed=$((passed + 1)); else
    failed=$((failed + 1))
    echo "FAIL inspect the plan's tactics: no tactics section"
fi
head -c 3000 "$WORK/a.kiln" >"$WORK/cut.kiln"
expect "truncated plan" 1 "cut.kiln.*corrupt or truncated.*kiln build" -- "$KILN" run "$WORK/cut.kiln"
expect "optimizer options with a plan" 1 "a plan is already optimized" -- "$KILN" run "$WORK/a.kiln" --no-fuse gelu
expect "plan to a missing folder" 1 "cannot write" -- "$KILN" build "$MODEL" -o "$WORK/none/x.kiln" --device cpu
expect "build with a profile" 0 - -- "$KILN" build "$MODEL" -o "$WORK/p.kiln" --device cpu \
    --profile image=1x3x32x32:2x3x32x32:4x3x32x32
expect "a shape outside the profile" 1 "input 'image' has shape \[8, 3, 32, 32\], outside every profile" -- \
    "$KILN" run "$WORK/p.kiln" --shape image=8x3x32x32
printf '{"format":1,"kiln":"0.1.0","device":{"kind":"cuda","name":"GPU","architecture":"sm_90","software":""},"tactics":{"k":"1"}}' >"$WORK/other-cache.json"
cp "$WORK/other-cache.json" "$WORK/other-cache.orig"
expect "another device's timing cache" 0 - -- "$KILN" build "$MODEL" -o "$WORK/e.kiln" --device cpu \
    --timing-cache "$WORK/other-cache.json"
if cmp -s "$WORK/other-cache.json" "$WORK/other-cache.orig"; then passed=$((passed + 1)); else
    failed=$((failed + 1))
    echo "FAIL another device's timing cache: it was overwritten"
fi
expect "refit of a missing plan" 1 "nosuch.kiln: no such file" -- \
    "$KILN" refit "$WORK/nosuch.kiln" --from "$MODEL" -o "$WORK/f.kiln"
expect "refit with the same weights" 0 - -- "$KILN" refit "$WORK/a.kiln" --from "$MODEL" -o "$WORK/c.kiln"
if cmp -s "$WORK/a.kiln" "$WORK/c.kiln"; then passed=$((passed + 1)); else
    failed=$((failed + 1))
    echo "FAIL refit with the same weights: the plan changed"
fi
expect "refit from another network" 1 "not the network this plan was built from" -- \
    "$KILN" refit "$WORK/a.kiln" --from "$WORK/identity.onnx" -o "$WORK/d.kiln"

# Precision: int8 builds with calibration, the calibration cache, the report in inspect, and the demo.
DIGITS="$ROOT/models/digits"
"$PY" -c "import numpy as np; np.savez('$WORK/wrong-names.npz', image=np.zeros((2, 1, 8, 8), np.float32))"
expect "int8 without calibration data" 1 "--int8 needs --calibration" -- \
    "$KILN" build "$DIGITS/model.onnx" -o "$WORK/q.kiln" --device cpu --int8
expect "calibration without --int8" 1 "go with --int8" -- \
    "$KILN" build "$DIGITS/model.onnx" -o "$WORK/q.kiln" --device cpu --calibration "$DIGITS/calibration.npz"
expect "calibration data for other inputs" 1 "wrong-names.npz.*no array for input 'input'" -- \
    "$KILN" build "$DIGITS/model.onnx" -o "$WORK/q.kiln" --device cpu --int8 --calibration "$WORK/wrong-names.npz"
expect "an unknown calibrator" 1 "no calibrator 'kl'" -- "$KILN" build "$DIGITS/model.onnx" -o "$WORK/q.kiln" \
    --device cpu --int8 --calibration "$DIGITS/calibration.npz" --calibrator kl
expect "fp16 on the CPU" 1 "no fast float16 kernels" -- \
    "$KILN" build "$DIGITS/model.onnx" -o "$WORK/h.kiln" --device cpu --fp16
expect "--io-type without a 16-bit build" 1 "goes with --fp16 or --bf16" -- \
    "$KILN" build "$DIGITS/model.onnx" -o "$WORK/h.kiln" --device cpu --io-type float16
expect "int8 with fp16 on the CPU" 1 "no fast float16 kernels" -- \
    "$KILN" build "$DIGITS/model.onnx" -o "$WORK/h.kiln" --device cpu --int8 --fp16 \
    --calibration "$DIGITS/calibration.npz"
expect "fp16 and bf16 together" 1 "choose one of --fp16 and --bf16" -- \
    "$KILN" build "$DIGITS/model.onnx" -o "$WORK/h.kiln" --device cpu --fp16 --bf16
expect "an int8 plan" 0 - -- "$KILN" build "$DIGITS/model.onnx" -o "$WORK/q.kiln" --device cpu --int8 \
    --calibration "$DIGITS/calibration.npz" --calibration-cache "$WORK/calibration.txt" --per-layer
if grep -q "^calibrator: entropy" "$WORK/calibration.txt" && grep -q "6 layers in int8" "$WORK/out"; then
    passed=$((passed + 1))
else
    failed=$((failed + 1))
    echo "FAIL an int8 plan: no calibration cache or not every layer in int8: $(head -3 "$WORK/out")"
fi
expect "int8 from the cache alone" 0 - -- "$KILN" build "$DIGITS/model.onnx" -o "$WORK/q2.kiln" --device cpu \
    --int8 --calibration-cache "$WORK/calibration.txt"
if grep -q "not calibrating" "$WORK/out"; then passed=$((passed + 1)); else
    failed=$((failed + 1))
    echo "FAIL int8 from the cache alone: the cache was not used"
fi
expect "int8 options with a plan" 1 "a plan keeps its precision" -- "$KILN" run "$WORK/q.kiln" --int8
expect "inspect an int8 plan" 0 - -- "$KILN" inspect "$WORK/q.kiln"
if grep -q "accuracy guard on 256 calibration samples" "$WORK/out" && grep -q "convolution.int8" "$WORK/out"; then
    passed=$((passed + 1))
else
    failed=$((failed + 1))
    echo "FAIL inspect an int8 plan: no precision report or no int8 layers"
fi
expect "compare the int8 plan with the test split" 0 - -- \
    "$KILN" compare "$WORK/q.kiln" --reference "$DIGITS/test.npz" --tolerance 0.05
expect "the demo" 0 - -- "$KILN" demo --device cpu --seconds 0.05 --json "$WORK/demo.json"
if "$PY" - "$WORK/demo.json" <<'PYEOF'
import json, sys
d = json.load(open(sys.argv[1]))
rows = {r["precision"]: r for r in d["results"]}
assert set(rows) == {"fp32", "int8"}, rows
assert rows["fp32"]["top1"] >= 0.99, rows["fp32"]
assert abs(rows["int8"]["top1"] - rows["fp32"]["top1"]) <= 0.005, rows
assert rows["int8"]["weightBytes"] * 3 < rows["fp32"]["weightBytes"], rows
assert [s["precision"] for s in d["skipped"]] == ["fp16", "int8+fp16"], d["skipped"]
PYEOF
then passed=$((passed + 1)); else
    failed=$((failed + 1))
    echo "FAIL the demo: its results are not what they should be"
fi

# A model quantized by ONNX Runtime's tool (scripts/quantize-digits.py): its Q/DQ pairs fold into int8 layers,
# and the outputs match the Q/DQ graph's definition as ONNX Runtime computes it (one quantization step of
# rounding apart at most, where float and integer sums round differently).
QDQ="$ROOT/models/digits-qdq"
expect "a Q/DQ model against ONNX Runtime" 0 - -- \
    "$KILN" compare "$QDQ/model.onnx" --reference "$QDQ/reference.npz" --tolerance 2e-3 --device cpu
expect "inspect a Q/DQ model" 0 - -- "$KILN" inspect "$QDQ/model.onnx"
if grep -q "convolution.int8" "$WORK/out" && ! grep -Eq "^  (quantize|dequantize) " "$WORK/out"; then
    passed=$((passed + 1))
else
    failed=$((failed + 1))
    echo "FAIL inspect a Q/DQ model: quantize/dequantize layers left, or no int8 convolution"
fi

# The same model quantized to FP8 E4M3 (scripts/quantize-digits-fp8.py): float8 pairs and weights fold into
# products with float8 operands, and the outputs match the Q/DQ graph as ONNX Runtime computes it (a sum next to
# a midpoint between two E4M3 numbers may round the other way, one step, as with int8).
FP8="$ROOT/models/digits-fp8"
expect "an FP8 Q/DQ model against ONNX Runtime" 0 - -- \
    "$KILN" compare "$FP8/model.onnx" --reference "$FP8/reference.npz" --tolerance 1e-3 --device cpu
expect "inspect an FP8 Q/DQ model" 0 - -- "$KILN" inspect "$FP8/model.onnx"
if [ "$(grep -c "convolution.int8\[.*:float8e4m3fn" "$WORK/out")" -eq 5 ] && grep -q "matMul.int8\[input=.*:float8e4m3fn" "$WORK/out" \
    && ! grep -Eq "^  (quantize|dequantize) " "$WORK/out"; then
    passed=$((passed + 1))
else
    failed=$((failed + 1))
    echo "FAIL inspect an FP8 Q/DQ model: quantize/dequantize layers left, or products not in float8"
fi

echo "cli: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
