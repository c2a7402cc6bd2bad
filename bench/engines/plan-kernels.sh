#!/usr/bin/env bash
# Device check: CUDA tests; then ResNet-50 at batch 1 built into a plan (strict FP32, tuned), the tactics where
# timing chose Kiln's split-TF32 kernel (-1 - i), and the plan loaded in a fresh process and compared with the
# reference, so a plan whose tactics name a kernel runs from its saved cubin.
set -u
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
python3 $D/baselines.py --export $M --models resnet50 --batches 1 --no-compile --quick --no-ceilings \
    > $OUT/base.log 2>&1 || tail -5 $OUT/base.log
$K build $M/resnet50.onnx -o /tmp/r50-1.kiln --device cuda --batch 1 2>&1 | tail -1
$K inspect /tmp/r50-1.kiln --verbose | grep -E -- "-> -[0-9]+$" | sed 's/^/   kernel: /'
$K compare /tmp/r50-1.kiln --reference $M/resnet50.io_b1.npz 2>&1 | tail -1
