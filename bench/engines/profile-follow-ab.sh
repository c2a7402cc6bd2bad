#!/usr/bin/env bash
# A/B of two kiln binaries (.device/kiln.xz, .device/kiln-prev.xz) on the same profile plans (batch 1:8:32, built by
# the first): batches 5, 16, 24 from each plan with NVRTC off, the two binaries alternating twice; batch 16 against
# the CPU; in FP32, batch 16 built and timed in memory.
set -u
KILN_GPU_TESTS=0 source bench/engines/common.sh
KP=$D/kiln-prev; xz -dc $D/kiln-prev.xz > $KP && chmod +x $KP
python3 $D/baselines.py --export $M --models resnet50,bert-base --batches 1 --no-compile --quick --no-ceilings > /tmp/export.log 2>&1 || tail -5 /tmp/export.log
profile() { case $1 in bert-base) echo "input_ids=1x128:8x128:32x128,attention_mask=1x128:8x128:32x128" ;; *) echo "input=1x3x224x224:8x3x224x224:32x3x224x224" ;; esac; }
shape() { case $1 in bert-base) echo "--shape input_ids=$2x128 --shape attention_mask=$2x128" ;; *) echo "--shape input=$2x3x224x224" ;; esac; }
median() { grep -E "^ *compute" | awk '{print $4}'; }
for m in resnet50 bert-base; do
  for p in fp32 fp16; do
    opts=""; tol=1e-4; [[ $p == fp16 ]] && { opts="--fp16"; tol=2e-2; }
    $K build $M/$m.onnx --device cuda $opts --profile $(profile $m) -o /tmp/$m-$p.kiln > /tmp/b.log 2>&1 || { tail -3 /tmp/b.log; continue; }
    echo "== $m $p ($(grep -o 'in [0-9.]* s' /tmp/b.log))"
    for b in 5 16 24; do
      line="   b$b:"
      for r in 1 2; do for bin in K KP; do
        v=$(KILN_NVRTC=off ${!bin} bench /tmp/$m-$p.kiln $(shape $m $b) --duration 0.7 --warmup 20 2>&1 | median)
        line="$line $bin=$v"
      done; done
      echo "$line"
    done
    echo "   b16 vs CPU (algorithm followed): $(KILN_NVRTC=off $K compare /tmp/$m-$p.kiln $(shape $m 16) --tolerance $tol 2>&1 | tail -1 | grep -o 'worst.*')"
    [[ $p == fp32 ]] && echo "   b16 built and timed in memory: $($K bench $M/$m.onnx --device cuda $(shape $m 16) --duration 0.7 --warmup 20 2>&1 | median)"
  done
done
