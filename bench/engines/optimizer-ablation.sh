# On the GPU machine (carried .device folder): what the graph optimizer does to the four bench models in float16.
# Each model (exported by baselines.py; only the missing ones are exported, so `bash
# bench/precision/targets.sh --export` in the call before on the same warm machine saves that time) is built
# `--fp16 --batch 64` twice: with the folding passes only (identity-elimination, shape-folding,
# constant-folding, dead-code-elimination) and with the standard pipeline. Both plans are checked against the
# strict-FP32 reference at batch 1, and timed at batch 1 and 64 (`kiln bench --cuda-graph --duration 2`); the
# table shows engine layers, launches per inference and median compute ms, beside PyTorch eager FP16 from
# baselines.py in the same call. No GPU tests (KILN_GPU_TESTS=1 runs them first). Logs in $OUT/ablation.tgz.
# Use: bash bench/engines/optimizer-ablation.sh [MODELS]
set -o pipefail
models=${1:-resnet50,mobilenet_v2,bert-base,vit_b_16}
KILN_GPU_TESTS=${KILN_GPU_TESTS:-0} source bench/engines/common.sh
L=$OUT/ablation
mkdir -p $L
export_missing "$models" "$L/export.log"
folding=identity-elimination,shape-folding,constant-folding,dead-code-elimination
for m in ${models//,/ }; do
    for variant in folding all; do
        passes=()
        [[ $variant == folding ]] && passes=(--passes $folding)
        /usr/bin/time -f "build %e s" $K build $M/$m.onnx -o /tmp/$m-$variant.kiln --device cuda --fp16 --batch 64 \
            "${passes[@]}" > "$L/build-$m-$variant.log" 2>&1 || tail -3 "$L/build-$m-$variant.log"
        $K compare /tmp/$m-$variant.kiln --reference $M/$m.io_b1.npz --tolerance 5e-2 2>&1 | tail -1 |
            sed "s/^/$m $variant: /"
        for b in 1 64; do
            $K bench /tmp/$m-$variant.kiln --batch $b --cuda-graph --duration 2 --json "$L/kiln-$m-$variant-b$b.json" \
                > "$L/bench-$m-$variant-b$b.log" 2>&1 || tail -3 "$L/bench-$m-$variant-b$b.log"
        done
    done
done
python3 $D/baselines.py --models "$models" --batches 1 64 --no-compile --no-ceilings --rounds 1 \
    --json "$L/base.json" > "$L/base.log" 2>&1 || tail -5 "$L/base.log"
python3 - "$L" "$models" <<'PY'
import json, re, sys
folder, models = sys.argv[1], sys.argv[2].split(",")
eager = {(r["model"], r["batch"]): r["median_ms"] for r in json.load(open(f"{folder}/base.json"))["results"]
         if r.get("mode") == "eager_fp16"}
def read(model, variant, batch):
    try:
        text = open(f"{folder}/bench-{model}-{variant}-b{batch}.log").read()
        median = json.load(open(f"{folder}/kiln-{model}-{variant}-b{batch}.json"))["results"][0]["median_ms"]
    except (OSError, ValueError, KeyError, IndexError):
        return None
    engine = re.search(r"engine: (\d+) layers \((\d+) views, no work\), (\d+) kernel launches", text)
    return (f"{engine[1]} ({engine[2]} views)", int(engine[3]), median) if engine else None
print("| model | batch | engine layers (folding -> all) | launches (folding -> all) | Kiln FP16 ms (folding -> all) "
      "| eager FP16 ms | all vs eager |")
print("|---|---:|---:|---:|---:|---:|---:|")
for m in models:
    for b in (1, 64):
        f, a, e = read(m, "folding", b), read(m, "all", b), eager.get((m, b))
        if not f or not a:
            print(f"| {m} | {b} | missing | | | | |"); continue
        ratio = f"{e / a[2]:.2f}x" if e else "-"
        eager_ms = f"{e:.3f}" if e else "-"
        print(f"| {m} | {b} | {f[0]} -> {a[0]} | {f[1]} -> {a[1]} | {f[2]:.3f} -> {a[2]:.3f} | {eager_ms} | {ratio} |")
PY
tar -czf $OUT/ablation.tgz -C $OUT ablation && rm -rf $L
