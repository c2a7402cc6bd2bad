#!/usr/bin/env bash
# Times Kiln's CPU backend against ONNX Runtime (CPU) on the conformance suite's light zoo models, side by side
# in one run on this machine. Prints a markdown table for BENCHMARKS.md.
#
#   usage: bench/cpu-light-models.sh [MODEL...]     (default: resnet50; names as in .conformance/suite/light)
# Needs: a release build (swift build -c release --product kiln) and the suite (scripts/test.sh makes it).
# ONNX Runtime is installed into .conformance/bench-venv on first use.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
KILN="$(swift build -c release --show-bin-path)/kiln"
SUITE=.conformance/suite/light
REPEAT="${REPEAT:-5}"
source bench/ort-venv.sh
models=("$@")
[ ${#models[@]} -gt 0 ] || models=(resnet50)
echo "| model | Kiln CPU median ms | ONNX Runtime CPU median ms | ratio (ORT / Kiln) |"
echo "|---|---:|---:|---:|"
for m in "${models[@]}"; do
    case_dir="$SUITE/test_$m"
    kiln_ms=$("$KILN" run "$case_dir/model.onnx" --repeat "$REPEAT" | sed -nE 's/.* in ([0-9.]+) ms.*/\1/p')
    ort_ms=$("$VENV/bin/python" - "$case_dir" "$REPEAT" "$THREADS" <<'PY'
import sys, time, statistics, numpy as np, onnxruntime as ort
case, repeat, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
o = ort.SessionOptions(); o.intra_op_num_threads = threads
s = ort.InferenceSession(f"{case}/model.onnx", o, providers=["CPUExecutionProvider"])
feeds = {}
for i in s.get_inputs():
    shape = [d if isinstance(d, int) else 1 for d in i.shape]
    feeds[i.name] = np.random.default_rng(0).uniform(-1, 1, shape).astype(np.float32)
times = []
for _ in range(repeat):
    t = time.perf_counter(); s.run(None, feeds); times.append((time.perf_counter() - t) * 1000)
print(f"{statistics.median(times):.1f}")
PY
)
    ratio=$(python3 -c "print(f'{$ort_ms / $kiln_ms:.2f}')")
    echo "| $m | $kiln_ms | $ort_ms | $ratio |"
done
