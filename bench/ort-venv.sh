# Sourced by the CPU benchmark scripts: ONNX Runtime (CPU) in .conformance/bench-venv, made on first use, and
# the thread count both sides use. Sets VENV and THREADS.
VENV=.conformance/bench-venv
THREADS="$(nproc)"
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q onnxruntime==1.31.1 numpy==2.4.6
fi
