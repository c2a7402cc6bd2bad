#!/usr/bin/env bash
# Regenerates the committed protobuf code:
#   Sources/KilnONNX/Generated/onnx.pb.swift         from Sources/KilnONNX/onnx.proto (public)
#   Sources/KilnRuntime/Plan/Generated/plan.pb.swift from Sources/KilnRuntime/Plan/plan.proto (internal)
#
# Needs:
#   protoc             (3.21 or newer)
#   protoc-gen-swift   from swift-protobuf 1.39.0, found via $PROTOC_GEN_SWIFT
#                      or PATH.  To build it:
#                        git clone -b 1.39.0 https://github.com/apple/swift-protobuf
#                        cd swift-protobuf && swift build -c release --product protoc-gen-swift
#                        export PROTOC_GEN_SWIFT=$PWD/.build/release/protoc-gen-swift
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SRC_DIR="$ROOT/Sources/KilnONNX"
OUT_DIR="$SRC_DIR/Generated"

how_to_get_plugin() {
  cat >&2 <<'MSG'
protoc-gen-swift not found.  Build it from swift-protobuf 1.39.0:
  git clone -b 1.39.0 https://github.com/apple/swift-protobuf
  cd swift-protobuf && swift build -c release --product protoc-gen-swift
then either put .build/release on PATH or
  export PROTOC_GEN_SWIFT=/path/to/swift-protobuf/.build/release/protoc-gen-swift
MSG
}

if ! command -v protoc >/dev/null 2>&1; then
  echo "protoc not found; install protobuf-compiler (3.21 or newer)." >&2
  exit 1
fi

PLUGIN="${PROTOC_GEN_SWIFT:-}"
if [[ -z "$PLUGIN" ]]; then
  PLUGIN="$(command -v protoc-gen-swift || true)"
fi
if [[ -z "$PLUGIN" || ! -x "$PLUGIN" ]]; then
  how_to_get_plugin
  exit 1
fi

echo "protoc:           $(protoc --version)"
echo "protoc-gen-swift: $PLUGIN ($("$PLUGIN" --version 2>/dev/null || echo unknown version))"

generate() {
    local src_dir="$1" out_dir="$2" visibility="$3"
    mkdir -p "$out_dir"
    rm -f "$out_dir"/*.pb.swift
    protoc \
        --plugin=protoc-gen-swift="$PLUGIN" \
        --proto_path="$src_dir" \
        --swift_out="$out_dir" \
        --swift_opt=Visibility="$visibility" \
        --swift_opt=FileNaming=FullPath \
        "$src_dir"/*.proto
    echo "Generated:"
    ls -1 "$out_dir"/*.pb.swift
}

generate "$SRC_DIR" "$OUT_DIR" Public
generate "$ROOT/Sources/KilnRuntime/Plan" "$ROOT/Sources/KilnRuntime/Plan/Generated" Internal
