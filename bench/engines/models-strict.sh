#!/usr/bin/env bash
# Device run: CUDA tests (not with KILN_GPU_TESTS=0); the models through bench/gpu-models.sh (PyTorch eager
# beside Kiln strict FP32 and TF32, correctness against the references); PyTorch eager FP32 with its default
# TF32 settings and with TF32 off, side by side (eager-strict.py), for STRICT_MODELS (default resnet50; empty:
# none) at batch 64; a per-layer profile of ResNet-50 strict FP32 at batch 64 and the tactics its build chose
# (not with PROFILE=0). MODELS and BATCHES pass to gpu-models.sh (default all four, "1 64"); MODELS= (empty)
# only exports ResNet-50. Logs are packed into $OUT/logs.tgz.
set -u
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
here=$(dirname "${BASH_SOURCE[0]}")
if [[ ${MODELS-all} != "" ]]; then
    models=${MODELS:-resnet50,mobilenet_v2,bert-base,vit_b_16}
    [[ $models == all ]] && models=resnet50,mobilenet_v2,bert-base,vit_b_16
    KILN_MODELS_DIR=$M bash $here/../gpu-models.sh $K $D/baselines.py $OUT/models "$models" "${BATCHES:-1 64}" \
        -- --no-compile --no-ceilings 2>&1 | tail -40
else
    python3 $D/baselines.py --export $M --models resnet50 --batches 1 --no-compile --quick --no-ceilings \
        > $OUT/base.log 2>&1 || tail -5 $OUT/base.log
fi
if [[ -n ${STRICT_MODELS-resnet50} ]]; then
    echo "== eager FP32, default TF32 settings and TF32 off"
    python3 $here/eager-strict.py $D/baselines.py $OUT/eager-strict.json "${STRICT_MODELS:-resnet50}" 64 2>&1 | tail -4
fi
if [[ ${PROFILE:-1} != 0 ]]; then
    echo "== profile: ResNet-50 strict FP32 b64"
    $K build $M/resnet50.onnx -o /tmp/r50-64.kiln --device cuda --batch 64 > $OUT/build-r50.log 2>&1
    $K bench /tmp/r50-64.kiln --batch 64 --duration 1 --profile > $OUT/profile.log 2>&1
    $K inspect /tmp/r50-64.kiln --verbose > $OUT/inspect.log 2>&1
    grep -E "compute|sum of medians" $OUT/profile.log
    echo "== layers where timing chose Kiln's split-TF32 kernel (tactic -1 - i)"
    grep -E -- "-> -[0-9]+$" $OUT/inspect.log
    grep -cE "^  (cublasLt|cudnn)" $OUT/inspect.log | sed 's/^/   library tactics in all: /'
    grep -E "built|wrote" $OUT/build-r50.log | tail -1
fi
cd $OUT && find . -name "*.log" | tar -czf logs.tgz -T - && find . -name "*.log" -delete
