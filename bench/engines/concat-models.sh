#!/usr/bin/env bash
# Device run: the CUDA tests (not with KILN_GPU_TESTS=0), then the concat-heavy networks DenseNet-121 and
# GoogLeNet (bench/models/concat_nets.py: torchvision, random weights, PyTorch eager timed in the same call)
# with the carried binary (.device/kiln.xz) and an earlier one (BEFORE, default .device/kiln-before.xz): strict
# float32 and float16 at BATCHES (default "1 32"), each checked against PyTorch's output at batch 1 and timed
# with CUDA graphs; the new binary also with `--no-fuse $OFF` (default concat-in-place), and `kiln inspect` of
# every plan in logs.tgz.
# Builds of one model and precision share a timing cache, so the three binaries' plans pick the same tactics.
set -u
BATCHES=${BATCHES:-1 32}
MODELS=${MODELS:-densenet121 googlenet}
OFF=${OFF:-concat-in-place}
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
xz -dc ${BEFORE:-$D/kiln-before.xz} > $D/kiln-before && chmod +x $D/kiln-before
python3 bench/models/concat_nets.py $M --batches $BATCHES > $OUT/eager.log 2>$OUT/export.log || tail -5 $OUT/export.log
cat $OUT/eager.log
for m in $MODELS; do
  for precision in fp32 fp16; do
    flag=; tol=1e-4
    [[ $precision == fp16 ]] && flag=--fp16 && tol=2e-2
    for which in before after off; do
      bin=$K; extra=
      [[ $which == before ]] && bin=$D/kiln-before
      [[ $which == off ]] && extra="--no-fuse $OFF"
      for b in $BATCHES; do
        plan=/tmp/$m-$precision-$which-$b.kiln
        $bin build $M/$m.onnx -o $plan --device cuda --batch $b $flag $extra --timing-cache /tmp/$m-$precision.cache > $OUT/build-$m-$precision-$which-$b.log 2>&1 \
          || { echo "build failed: $m $precision $which b$b"; tail -3 $OUT/build-$m-$precision-$which-$b.log; continue; }
        $bin inspect $plan > $OUT/inspect-$m-$precision-$which-$b.log 2>&1
        echo "== $m $precision $which b$b: $(grep -E "^memory" $OUT/inspect-$m-$precision-$which-$b.log | head -1)"
        grep -E "^  (concat|transpose|slice|convolution) " $OUT/inspect-$m-$precision-$which-$b.log | xargs echo "  "
        [[ $b == 1 ]] && $bin compare $plan --reference $M/$m.io_b1.npz --tolerance $tol 2>&1 | tail -1
        $bin bench $plan --batch $b --cuda-graph --duration 2 2>&1 | grep -E "^    compute"
      done
    done
  done
done
cd $OUT && tar -czf logs.tgz *.log && rm -f *.log
