#!/usr/bin/env bash
# Times two pointwise chains on Kiln's CPU backend with the optimizer's pointwise fusion and without it
# (`--no-fuse pointwise-fusion`), side by side in one run on this machine:
#   swish-tanh: Sigmoid, Mul, Mul, Add, Tanh, Mul over x [N, 64, 56, 56], batch 8 (unary and binary steps);
#   arithmetic: Mul, Add, Mul, Sub, Div, Add with scalar constants over the same x, batch 32 (binary steps only).
#
#   usage: bench/cpu-fused-chains.sh
# Needs: a release build (swift build -c release --product kiln) and the conformance venv (scripts/test.sh
# makes it; it has onnx).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
KILN="${KILN:-$(swift build -c release --show-bin-path)/kiln}"
PY=.conformance/suite/.venv/bin/python
DIR="$(mktemp -d)"
trap 'rm -rf "$DIR"' EXIT
"$PY" - "$DIR" <<'PY'
import sys, numpy as np, onnx
from onnx import helper, TensorProto, numpy_helper
out = sys.argv[1]
def model(name, steps):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 64, 56, 56])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 64, 56, 56])
    nodes, inits, prev = [], [], "x"
    for i, (op, other) in enumerate(steps):
        result = "y" if i == len(steps) - 1 else f"t{i}"
        inputs = [prev]
        if other == "x":
            inputs.append("x")
        elif other is not None:
            inits.append(numpy_helper.from_array(np.array(other, dtype=np.float32), f"c{i}"))
            inputs.append(f"c{i}")
        nodes.append(helper.make_node(op, inputs, [result]))
        prev = result
    graph = helper.make_graph(nodes, name, [x], [y], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), f"{out}/{name}.onnx")
model("swish-tanh", [("Sigmoid", None), ("Mul", "x"), ("Mul", 0.5), ("Add", "x"), ("Tanh", None), ("Mul", "x")])
model("arithmetic", [("Mul", 1.5), ("Add", 0.25), ("Mul", "x"), ("Sub", 2.0), ("Div", 3.0), ("Add", "x")])
PY
echo "| chain | batch | fused median ms | unfused median ms | unfused / fused |"
echo "|---|---:|---:|---:|---:|"
for spec in "swish-tanh 8" "arithmetic 32"; do
    set -- $spec
    median() {
        "$KILN" bench "$DIR/$1.onnx" --device cpu --batch "$2" --iterations 20 --warmup 200 "${@:3}" 2>&1 |
            awk '$1 == "compute" { print $4 }' | head -1
    }
    fused=$(median "$1" "$2")
    unfused=$(median "$1" "$2" --no-fuse pointwise-fusion)
    ratio=$(awk -v a="$unfused" -v b="$fused" 'BEGIN { printf "%.2f", a / b }')
    echo "| $1 | $2 | $fused | $unfused | $ratio |"
done
