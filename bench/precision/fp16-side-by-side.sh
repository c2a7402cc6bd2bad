# The timing half of fp16-models.sh, for a machine where that script already ran (plans in /tmp, models in
# /tmp/m): Kiln's fp16 plans at batch 1 and 64 and baselines.py (torch.compile included) in one call, then
# the side-by-side table; every log in $OUT/logs.tgz.
# Use: bash bench/precision/fp16-side-by-side.sh [MODELS] [-- extra baselines.py options]
set -o pipefail
models=${1:-resnet50,mobilenet_v2,bert-base,vit_b_16}
shift $(($# < 1 ? $# : 1))
[[ ${1:-} == "--" ]] && shift
KILN_GPU_TESTS=0 source bench/engines/common.sh
L=$OUT/logs
mkdir -p $L
for m in ${models//,/ }; do
    $K compare /tmp/$m-fp16.kiln --reference $M/$m.io_b1.npz --tolerance 5e-2 > $L/compare-$m.log 2>&1
    grep -vE "^device" $L/compare-$m.log
    for b in 1 64; do
        $K bench /tmp/$m-fp16.kiln --batch $b --cuda-graph --duration 3 --json $L/kiln-$m-b$b.json \
            > $L/bench-$m-b$b.log 2>&1 || tail -3 $L/bench-$m-b$b.log
        grep -E "^    compute" $L/bench-$m-b$b.log | sed "s/^/$m b$b fp16 /"
    done
done
python3 - $L/kiln.json $L/kiln-*.json <<'PY'
import json, sys
rows = []
for path in sys.argv[2:]:
    rows += json.load(open(path))["results"]
json.dump({"results": rows}, open(sys.argv[1], "w"), indent=1)
PY
python3 $D/baselines.py --models "$models" --batches 1 64 --no-ceilings --json $L/base.json "$@" \
    > $L/base.log 2>&1 || tail -5 $L/base.log
python3 $D/baselines.py --compare $L/base.json $L/kiln.json 2>&1 | tee $OUT/side-by-side.txt
tar -czf $OUT/logs.tgz -C $OUT logs && rm -rf $L
