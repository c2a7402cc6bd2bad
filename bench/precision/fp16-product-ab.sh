#!/usr/bin/env bash
# On the GPU machine: the CUDA tests, then BERT-base and ViT-B/16 (baselines.py's seeded random weights) built at
# batch 64 in float16 by two kiln binaries, the carried .device/kiln.xz (B, this tree) and .device/kiln-prev.xz
# (A, an earlier commit), timed alternately (`kiln bench --duration 2`, median compute ms), two rounds; the
# timed choices among Kiln's alternative launches in B's plans, and B's batch-1 float16 error against the
# strict-FP32 reference.
set -u
source bench/engines/common.sh
xz -dc $D/kiln-prev.xz > $D/kiln-prev && chmod +x $D/kiln-prev
models=${MODELS:-bert-base vit_b_16}
python3 $D/baselines.py --export $M --models ${models// /,} --batches 1 --no-compile --quick --no-ceilings \
    > "$OUT/export.log" 2>&1 || tail -5 "$OUT/export.log"
for m in $models; do
    $D/kiln-prev build $M/$m.onnx -o /tmp/$m-a.kiln --device cuda --batch 64 --fp16 > "$OUT/build-$m-a.log" 2>&1
    $K build $M/$m.onnx -o /tmp/$m-b.kiln --device cuda --batch 64 --fp16 > "$OUT/build-$m-b.log" 2>&1
    echo "== $m: builds $(grep -o 'in [0-9.]* s' $OUT/build-$m-a.log) (A), $(grep -o 'in [0-9.]* s' $OUT/build-$m-b.log) (B)"
    for round in 1 2; do
        for p in a b; do
            kiln=$K; [[ $p == a ]] && kiln=$D/kiln-prev
            printf "   round %s %s: " $round $p
            $kiln bench /tmp/$m-$p.kiln --batch 64 --duration 2 2>&1 | grep -E "^    compute" | awk '{print $4, "ms"}'
        done
    done
    echo "   B's alternative launches: $($K inspect /tmp/$m-b.kiln --verbose 2>&1 | grep 'kiln.kernel' | sed 's/.*kiln.kernel //' | sed 's/ m[0-9].* -> / -> /' | sort | uniq -c | tr -s ' ' | tr '\n' ';')"
    echo "   B float16 b1 against the reference: $($K compare $M/$m.onnx --device cuda --fp16 --tolerance 0.05 --reference $M/$m.io_b1.npz 2>&1 | tail -1 | grep -o 'worst.*')"
done
