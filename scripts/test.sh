#!/usr/bin/env bash
# Kiln's one test command: everything CI checks, from a fresh clone.
#
#   usage: scripts/test.sh          (from any directory)
#
# Needs: Swift 6.3.1 toolchain (with swift-format), python3 with pip, and PyPI
# access the first time the conformance suite's Python environment is made.
#
# Steps (stops at the first failure):
#   1. swift format lint --strict   (.swift-format; generated code excluded)
#   2. swift build --product KilnPackageTests, swift test --skip-build (debug, unit tests)
#   3. swift build -c release --product kiln
#   4. conformance suite into .conformance/suite (cached; see make-suite.sh)
#   5. kiln verify --through-plan on the suite (each engine saved as a plan and
#      loaded back before it runs), then check_expected.py against
#      Tests/Conformance/expected-failures.txt
#
# Environment:
#   KILN_VERIFY_JOBS      parallel cases for kiln verify (default 2)
#   KILN_VERIFY_TIMEOUT   seconds before kiln verify is stopped (default 2700)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

SUITE=.conformance/suite
RESULTS=.conformance/results.tsv
EXPECTED=Tests/Conformance/expected-failures.txt
PYTHON="${PYTHON:-python3}"
JOBS="${KILN_VERIFY_JOBS:-2}"
VERIFY_TIMEOUT="${KILN_VERIFY_TIMEOUT:-2700}"

T0=$SECONDS
STEP_T0=$SECONDS
CURRENT=""
TIMES=()

step() {
    finish_step
    CURRENT="$1"
    STEP_T0=$SECONDS
    echo
    echo "==> [$1] $2"
}

finish_step() {
    if [ -n "$CURRENT" ]; then
        TIMES+=("$(printf '%-12s %5d s' "$CURRENT" $((SECONDS - STEP_T0)))")
    fi
}

on_exit() {
    local rc=$?
    finish_step
    CURRENT=""
    echo
    echo "==> step times"
    for t in "${TIMES[@]}"; do echo "    $t"; done
    if [ $rc -eq 0 ]; then
        echo "==> scripts/test.sh: all steps passed in $((SECONDS - T0)) s"
    else
        echo "==> scripts/test.sh: FAILED (exit $rc) after $((SECONDS - T0)) s" >&2
    fi
}
trap on_exit EXIT

echo "==> Kiln test run in $ROOT"
echo "    $(swift --version 2>&1 | head -n 1)"
echo "    $("$PYTHON" --version 2>&1)"

# ---------------------------------------------------------------------------
step lint "swift format lint --strict (Sources, Tests, Package.swift; not the generated protobuf code)"
mapfile -t SWIFT_FILES < <(scripts/swift-sources.sh)
echo "    ${#SWIFT_FILES[@]} files"
if ! swift format lint --strict --parallel "${SWIFT_FILES[@]}"; then
    echo "lint failed: run scripts/format.sh to format in place, then fix what remains" >&2
    exit 1
fi

# ---------------------------------------------------------------------------
# Building the test product alone keeps SwiftPM from also building swift-protobuf's own tools (a C++ protoc).
step build "swift build --product KilnPackageTests (debug: the library and its unit tests)"
swift build --product KilnPackageTests

step unit-tests "swift test (debug)"
swift test --skip-build

# ---------------------------------------------------------------------------
step release "swift build -c release --product kiln, --product network-example"
swift build -c release --product kiln
swift build -c release --product network-example
KILN="$(swift build -c release --show-bin-path)/kiln"
[ -x "$KILN" ] || {
    echo "release build produced no $KILN" >&2
    exit 1
}

# ---------------------------------------------------------------------------
step suite "ONNX conformance suite -> $SUITE"
scripts/conformance/make-suite.sh "$SUITE"

# ---------------------------------------------------------------------------
step cli "bad inputs on the command line; the bundled default model against its reference output"
scripts/cli-tests.sh "$KILN" "$SUITE/.venv/bin/python"
"$KILN" verify models
EXAMPLE_PLAN="$(mktemp -d)"
"$(swift build -c release --show-bin-path)/network-example" "$EXAMPLE_PLAN/small-cnn.kiln"
rm -rf "$EXAMPLE_PLAN"

# ---------------------------------------------------------------------------
step conformance "kiln verify $SUITE --jobs $JOBS, then check against $EXPECTED"
rm -f "$RESULTS"
verify_rc=0
timeout --kill-after=30 "$VERIFY_TIMEOUT" \
    "$KILN" verify "$SUITE" --jobs "$JOBS" --through-plan --results "$RESULTS" || verify_rc=$?
if [ $verify_rc -eq 124 ] || [ $verify_rc -eq 137 ]; then
    echo "kiln verify did not finish within ${VERIFY_TIMEOUT} s" >&2
    exit 1
fi
if [ ! -s "$RESULTS" ]; then
    echo "kiln verify (exit $verify_rc) wrote no results to $RESULTS" >&2
    exit 1
fi
# kiln verify exits non-zero whenever a case fails; the expected-failures
# list decides whether that is acceptable.
echo "    kiln verify exited with $verify_rc; checking $(wc -l <"$RESULTS") result rows"
"$PYTHON" scripts/conformance/check_expected.py "$RESULTS" "$EXPECTED"
