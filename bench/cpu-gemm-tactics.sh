#!/usr/bin/env bash
# Times Kiln's CPU backend with each GEMM micro-kernel setting against ONNX Runtime (CPU), side by side in one
# run on this machine, on the conformance suite's light zoo models at batch 1:
#   portable: KILN_CPU_ISA=portable, the portable Swift 6x8 GEMM kernel and the portable depthwise loop;
#   level 0:  no timing, the first candidate (the AVX2 6x16 kernel where the CPU has AVX2 and FMA);
#   level 3:  the default, up to 8 micro-kernel/blocking candidates timed per layer signature.
# Each Kiln column is `kiln bench --iterations N` (compute median, after the first run that builds and tunes);
# ONNX Runtime runs with as many intra-op threads as this machine has cores. Prints a markdown table.
#
#   usage: bench/cpu-gemm-tactics.sh [MODEL...]   (default: resnet50 inception_v1 densenet121 squeezenet)
# MODEL is a light model's name or an .onnx file (bench/models/mobilenet_v2_shaped.py writes MobileNetV2's
# shapes). With BEFORE=PATH (another kiln binary, e.g. an earlier commit's) a first column times it at level 3.
# Needs: a release build (swift build -c release --product kiln) and the suite (scripts/test.sh makes it).
# ONNX Runtime is installed into .conformance/bench-venv on first use (bench/ort-venv.sh).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
KILN="${KILN:-$(swift build -c release --show-bin-path)/kiln}"
SUITE=.conformance/suite/light
ITERATIONS="${ITERATIONS:-15}"
source bench/ort-venv.sh
models=("$@")
[ ${#models[@]} -gt 0 ] || models=(resnet50 inception_v1 densenet121 squeezenet)

median() {  # MODEL [kiln bench flags...]; KILN may name another binary
    "${KILN}" bench "$1" --device cpu --iterations "$ITERATIONS" "${@:2}" 2>&1 |
        awk '$1 == "compute" { print $4 }' | head -1
}

before_head="" before_rule=""
[ -z "${BEFORE:-}" ] || { before_head="| before ms "; before_rule="|---:"; }
echo "| model ${before_head}| Kiln portable ms | Kiln level 0 ms | Kiln level 3 ms | ONNX Runtime ms | portable / level 3 | ORT / level 3 |"
echo "|---${before_rule}|---:|---:|---:|---:|---:|---:|"
for m in "${models[@]}"; do
    model="$SUITE/test_$m/model.onnx"
    if [ -f "$m" ]; then model="$m"; m="$(basename "$m" .onnx)"; fi
    before=""
    [ -z "${BEFORE:-}" ] || before="| $(KILN="$BEFORE" median "$model") "
    portable=$(KILN_CPU_ISA=portable median "$model" --level 0)
    level0=$(median "$model" --level 0)
    level3=$(median "$model")
    ort=$("$VENV/bin/python" - "$model" "$ITERATIONS" "$THREADS" <<'PY'
import sys, time, statistics, numpy as np, onnxruntime as ort
model, repeat, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
o = ort.SessionOptions(); o.intra_op_num_threads = threads
s = ort.InferenceSession(model, o, providers=["CPUExecutionProvider"])
feeds = {}
for i in s.get_inputs():
    shape = [d if isinstance(d, int) else 1 for d in i.shape]
    feeds[i.name] = np.random.default_rng(0).uniform(-1, 1, shape).astype(np.float32)
s.run(None, feeds)
times = []
for _ in range(repeat):
    t = time.perf_counter(); s.run(None, feeds); times.append((time.perf_counter() - t) * 1000)
print(f"{statistics.median(times):.1f}")
PY
)
    ratios=$(awk -v p="$portable" -v l="$level3" -v o="$ort" 'BEGIN { printf "%.2f | %.2f", p / l, o / l }')
    echo "| $m ${before}| $portable | $level0 | $level3 | $ort | $ratios |"
done
