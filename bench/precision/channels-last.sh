# Channels-last against channels-first float16 engines on the GPU machine (carried .device folder): the CUDA
# kernel tests, then ResNet-50 and MobileNetV2 exported by baselines.py, each built --fp16 with the layout pass
# and without it (--no-fuse channels-last): outputs against the strict-FP32 reference, median compute time
# at batch 1 and 64 (CUDA graphs), and a per-layer profile at 64. Logs in $OUT/logs.tgz.
# Use: [VARIANTS=nhwc] bash bench/precision/channels-last.sh [MODELS]
set -o pipefail
models=${1:-resnet50,mobilenet_v2}
source bench/engines/common.sh
L=$OUT/logs
mkdir -p $L
mv $OUT/gputests.log $L/ 2>/dev/null
python3 $D/baselines.py --export $M --models "$models" --batches 1 --no-compile --quick --no-ceilings \
    > $L/export.log 2>&1 || tail -5 $L/export.log
for m in ${models//,/ }; do
    for variant in ${VARIANTS:-nhwc nchw}; do
        flags=$([[ $variant == nchw ]] && echo "--no-fuse channels-last")
        echo "== $m $variant"
        # shellcheck disable=SC2086
        /usr/bin/time -f "build %e s" $K build $M/$m.onnx -o /tmp/$m-$variant.kiln --device cuda --fp16 --batch 64 \
            $flags > $L/build-$m-$variant.log 2>&1
        grep -E "build [0-9]|rror" $L/build-$m-$variant.log | head -3
        $K compare /tmp/$m-$variant.kiln --reference $M/$m.io_b1.npz --tolerance 5e-2 > $L/compare-$m-$variant.log 2>&1
        grep -v "^device" $L/compare-$m-$variant.log | head -4
        for b in 1 64; do
            $K bench /tmp/$m-$variant.kiln --batch $b --cuda-graph --duration 2 > $L/bench-$m-$variant-b$b.log 2>&1 ||
                tail -3 $L/bench-$m-$variant-b$b.log
            grep -E "^    compute" $L/bench-$m-$variant-b$b.log | sed "s/^/$m $variant b$b /"
        done
    done
    $K bench /tmp/$m-nhwc.kiln --batch 64 --duration 1 --profile > $L/profile-$m-nhwc.log 2>&1
    awk '/per-layer profile/{p=1;next} p && $1 ~ /%/ {k[$5]+=$2; n[$5]++} /sum of medians/ {print "  sum", $4, "ms"}
        END {for (x in k) printf "  %-22s %3d layers %7.3f ms\n", x, n[x], k[x]}' $L/profile-$m-nhwc.log | sort -k4 -nr | head -8
    sed -n '/per-layer profile/,+12p' $L/profile-$m-nhwc.log | cut -c1-150
done
tar -czf $OUT/logs.tgz -C $OUT logs && rm -rf $L
