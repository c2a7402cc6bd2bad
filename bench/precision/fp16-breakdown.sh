# Where float16 time goes (GPU machine, carried .device folder): BERT-base with and without the epilogue
# fusion (so a product and its GELU are timed as separate layers), and ResNet-50, each built --fp16 and
# profiled at batch 64 (`kiln bench --profile`), time summed per layer kind. Logs in $OUT/logs.tgz.
set -o pipefail
KILN_GPU_TESTS=0 source bench/engines/common.sh
L=$OUT/logs
mkdir -p $L
python3 $D/baselines.py --export $M --models bert-base,resnet50 --batches 1 --no-compile --quick --no-ceilings \
    > $L/export.log 2>&1 || tail -5 $L/export.log
summary() {
    awk '/per-layer profile/{p=1;next} p && $1 ~ /%/ {k[$5]+=$2; n[$5]++} /sum of medians/ {print "  sum", $4, "ms"}
        END {for (x in k) printf "  %-22s %3d layers %7.3f ms\n", x, n[x], k[x]}' "$1" | sort -k4 -nr | head -8
}
for variant in "bert-base:" "bert-base:--no-fuse epilogue-fusion" "resnet50:"; do
    m=${variant%%:*}
    flags=${variant#*:}
    tag=$m${flags:+-nofuse}
    echo "== $m $flags"
    # shellcheck disable=SC2086
    $K bench $M/$m.onnx --device cuda --fp16 $flags --batch 64 --duration 1 --profile > $L/profile-$tag.log 2>&1 ||
        tail -3 $L/profile-$tag.log
    summary $L/profile-$tag.log
    sed -n '/per-layer profile/,+8p' $L/profile-$tag.log | cut -c1-140
done
tar -czf $OUT/logs.tgz -C $OUT logs && rm -rf $L
