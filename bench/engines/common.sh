# Sourced by the engine benchmark scripts: unpacks the carried kiln binary and GPU test bundle, runs the CUDA
# kernel tests (not with KILN_GPU_TESTS=0), and sets D (the carried folder), K (kiln) and M (where models are
# exported), and `export_missing MODELS LOG`: baselines.py exports the comma list's models not already in $M.
D=.device
K=$D/kiln
M=/tmp/m
export_missing() {
    local missing
    missing=$(for m in ${1//,/ }; do [[ -f $M/$m.onnx && -f $M/$m.io_b1.npz ]] || printf "%s," "$m"; done)
    [[ -z $missing ]] && return 0
    echo "exporting ${missing%,}"
    python3 $D/baselines.py --export $M --models "${missing%,}" --batches 1 --no-compile --quick --no-ceilings \
        > "$2" 2>&1 || tail -5 "$2"
}
xz -dc $D/kiln.xz > $K && chmod +x $K
mkdir -p $M
[[ ${KILN_GPU_TESTS:-1} == 0 ]] && return 0
mkdir -p $D/gt && tar -xJf $D/gputests.tar.xz -C $D/gt
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
echo "== GPU tests"
LD_LIBRARY_PATH=$D/gt/lib timeout 240 $D/gt/KilnPackageTests.xctest --testing-library swift-testing \
    --filter "KilnCUDATests" > "$OUT/gputests.log" 2>&1
echo "rc=$?"
grep -E "✘|Test run with|recorded an issue" "$OUT/gputests.log" | head -20
