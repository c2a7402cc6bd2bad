#!/usr/bin/env bash
# Make (or refresh) the ONNX conformance suite in OUT.
#
#   usage: scripts/conformance/make-suite.sh OUT
#
# 1. OUT/.venv: a Python environment with the exact pins of requirements.txt,
#    made once (and remade when requirements.txt changes).  Uses `python3 -m
#    venv`; where that is unavailable (Debian without python3-venv) the pins
#    go into OUT/.venv/site with `pip install --target` and OUT/.venv/bin/python
#    is a small wrapper that puts them on PYTHONPATH.
# 2. generate_suite.py OUT, only when requirements.txt or generate_suite.py
#    changed since the last successful run (stamp: OUT/.suite-stamp, sha256 of
#    both files) or the suite is missing.
#
# Environment: PYTHON (default python3) picks the interpreter.
set -euo pipefail

if [ $# -ne 1 ]; then
    echo "usage: $0 OUT" >&2
    exit 2
fi

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REQS="$HERE/requirements.txt"
GEN="$HERE/generate_suite.py"
mkdir -p "$1"
OUT="$(cd "$1" && pwd)"
VENV="$OUT/.venv"
PY="$VENV/bin/python"
SYS_PY="$(command -v "${PYTHON:-python3}" || true)"

say() { echo "make-suite: $*"; }

# --- 1. the Python environment --------------------------------------------
reqs_hash="$(sha256sum "$REQS" | cut -d' ' -f1)"
venv_stamp="$VENV/.requirements.sha256"
if [ -x "$PY" ] && [ -f "$venv_stamp" ] && [ "$(cat "$venv_stamp")" = "$reqs_hash" ]; then
    say "python environment up to date ($VENV)"
else
    if [ -z "$SYS_PY" ]; then
        echo "make-suite: no python3 found (set PYTHON)" >&2
        exit 1
    fi
    say "creating python environment $VENV with the pins of $(basename "$REQS")"
    rm -rf "$VENV"
    if "$SYS_PY" -m venv "$VENV" >/dev/null 2>&1 && [ -x "$VENV/bin/pip" ]; then
        "$PY" -m pip install --quiet --disable-pip-version-check --no-input -r "$REQS"
    else
        say "venv unavailable; installing with pip --target instead"
        rm -rf "$VENV"
        mkdir -p "$VENV/bin"
        "$SYS_PY" -m pip install --quiet --disable-pip-version-check --no-input --root-user-action=ignore \
            --target "$VENV/site" -r "$REQS"
        cat >"$PY" <<EOF
#!/usr/bin/env bash
export PYTHONPATH="$VENV/site\${PYTHONPATH:+:\$PYTHONPATH}"
exec "$SYS_PY" "\$@"
EOF
        chmod +x "$PY"
    fi
    echo "$reqs_hash" >"$venv_stamp"
    say "installed: $("$PY" -c 'import onnx, numpy; print("onnx", onnx.__version__, "numpy", numpy.__version__)')"
fi

# --- 2. the suite ----------------------------------------------------------
suite_stamp="$OUT/.suite-stamp"
want="$(cat "$REQS" "$GEN" | sha256sum | cut -d' ' -f1)"
complete=yes
for f in SUMMARY.json MANIFEST.sha256 node light simple pytorch-converted pytorch-operator; do
    [ -e "$OUT/$f" ] || complete=no
done
if [ "$complete" = yes ] && [ -f "$suite_stamp" ] && [ "$(cat "$suite_stamp")" = "$want" ]; then
    say "suite up to date in $OUT (stamp ${want:0:12}); nothing to do"
    exit 0
fi

say "generating the suite into $OUT"
rm -f "$suite_stamp"
start=$SECONDS
PYTHONHASHSEED=0 "$PY" "$GEN" "$OUT"
echo "$want" >"$suite_stamp"
say "suite generated in $((SECONDS - start)) s (stamp ${want:0:12})"
