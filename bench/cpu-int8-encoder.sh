#!/usr/bin/env bash
# The CPU backend's int8 products on a BERT-shaped encoder (bench/models/bert_shaped.py: LAYERS layers, batch 8,
# sequence 128, seeded random weights), on this machine: the model built in int8 with a calibration batch of
# N(0,1) embeddings and a zero mask, then `kiln bench --duration 4` (median compute ms) of the int8 plan by
# BEFORE (another kiln binary, when given) and by this tree's release build at its widest instruction set and
# capped to AVX2 (KILN_CPU_ISA=avx2), two rounds alternating, and of the float32 model once.
#   usage: [BEFORE=PATH] [LAYERS=2] bench/cpu-int8-encoder.sh
# Needs a release build (swift build -c release --product kiln) and the suite's venv (scripts/test.sh makes it).
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
python=.conformance/suite/.venv/bin/python
kiln=$(swift build -c release --show-bin-path)/kiln
work=$(mktemp -d)
$python bench/models/bert_shaped.py $work/encoder.onnx --batch 8 --seq 128 --layers ${LAYERS:-2} > /dev/null
$python - $work <<'PY'
import sys
import numpy as np
import onnx
folder = sys.argv[1]
model = onnx.load(f"{folder}/encoder.onnx")
rng = np.random.default_rng(1)
batch = {}
for value in model.graph.input:
    shape = [d.dim_value for d in value.type.tensor_type.shape.dim]
    batch[value.name] = np.zeros(shape, np.float32) if "mask" in value.name else rng.standard_normal(shape).astype(np.float32)
np.savez(f"{folder}/calibration.npz", **batch)
PY
$kiln build $work/encoder.onnx --device cpu --int8 --calibration $work/calibration.npz -o $work/int8.kiln > /dev/null
median() { grep -E "^ *compute" | awk '{print $4}'; }
for round in 1 2; do
    [[ -n ${BEFORE:-} ]] && echo "round $round before:     $($BEFORE bench $work/int8.kiln --duration 4 2>&1 | median) ms"
    echo "round $round this tree: $($kiln bench $work/int8.kiln --duration 4 2>&1 | median) ms"
    echo "round $round AVX2 cap:  $(KILN_CPU_ISA=avx2 $kiln bench $work/int8.kiln --duration 4 2>&1 | median) ms"
done
echo "float32:           $($kiln bench $work/encoder.onnx --device cpu --duration 4 2>&1 | median) ms"
rm -rf $work
